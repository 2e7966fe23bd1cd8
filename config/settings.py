"""Settings, all from the environment (see README "Configuration")."""

import logging
import os
from pathlib import Path

import dj_database_url

from . import defaults
from .logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_int(name, default):
    return int(os.environ.get(name, default))


DEBUG = env_bool("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG and not env_bool("BULKOPS_INSECURE_DEV_KEY"):
        raise RuntimeError("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-dev-key-do-not-use-in-production"
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
# Plain http on 127.0.0.1 must work with DEBUG off: secure cookies only when asked for.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc from our own static files: /api/docs/ works offline
    "django_rq",
    "channels",
    "bulkops",
    "tickets",
    "metrics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.BodySizeLimitMiddleware",
    "config.middleware.NulCharacterMiddleware",
    "config.middleware.ServiceUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASE_URL = os.environ.get("DATABASE_URL", defaults.DATABASE_URL)
# Plain connections, closed after each request or job; the web process pools them instead
# (config/database.py, called by config/asgi.py), at most BULKOPS_DB_POOL_MAX.
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
BULKOPS_DB_POOL_MAX = env_int("BULKOPS_DB_POOL_MAX", 10)
BULKOPS_DB_POOL_TIMEOUT = env_int("BULKOPS_DB_POOL_TIMEOUT", 10)  # seconds a request waits for one, then 503
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", defaults.REDIS_URL)
# A Redis that does not answer fails a request within seconds (503), instead of hanging it.
REDIS_TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 5}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": REDIS_TIMEOUTS,
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": os.environ.get("BULKOPS_CHANNEL_PREFIX", "bulkops")},
    }
}
RQ_QUEUES = {
    "bulkops": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600},
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600},
}
# `manage.py rqworker` and `bulkops_worker` run this class: it resumes lost operations.
RQ = {"WORKER_CLASS": "bulkops.worker.RecoveringWorker"}

AUTH_PASSWORD_VALIDATORS = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/tickets/"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("BULKOPS_MAX_BODY_BYTES", 10 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.authentication.TokenAuthentication",
        "config.authentication.BearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies only (file uploads declare their own parsers): a form body cannot carry
    # nested data such as `operation_data`, and offering it misleads generated clients.
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "bulkops.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "bulk": os.environ.get("BULKOPS_THROTTLE_RATE", "60/min"),
        "metrics_bulk": os.environ.get("BULKOPS_METRICS_THROTTLE_RATE", "30/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Bulkops API",
    "DESCRIPTION": "Change many tickets and metrics at once: bulk operations, batches, live progress.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Operation ids and tags from the path after the version: `tickets_list`, tag `tickets`.
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "bulkops.api.schema.postprocess",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets that share a field name (`status`, `resource_type`): a name each, not a hash.
    "ENUM_NAME_OVERRIDES": {
        "TicketStatusEnum": "tickets.models.Status",
        "OperationStatusEnum": "bulkops.models.Status",
        "ItemStatusEnum": "bulkops.models.ItemStatus",
        "BatchResourceTypeEnum": ["categories", "metrics", "tickets"],  # POST /api/v1/batch/get/
        "OperationResourceTypeEnum": ["metrics", "tickets"],  # a bulk operation's create body
    },
}

# Bulk engine settings: bulkops/conf.py holds their defaults; the environment variable of the
# same name (README "Configuration") overrides one.
for _name in (
    "BULKOPS_MAX_ITEMS",
    "BULKOPS_MAX_SYNC_ITEMS",
    "BULKOPS_MAX_IMPORT_BYTES",
    "BULKOPS_MAX_ATOMIC_ITEMS",
    "BULKOPS_MAX_ACTIVE_PER_USER",
    "BULKOPS_MAX_BATCH_SIZE",
    "BULKOPS_FIRST_CHUNK_SIZE",
    "BULKOPS_CHUNK_LOCK_MS",
    "BULKOPS_SLICE_MIN_ITEMS",
    "BULKOPS_MAX_SLICES",
    "BULKOPS_STALE_AFTER",
    "BULKOPS_SLICE_SECONDS",
    "BULKOPS_LOCK_TIMEOUT_MS",
    "BULKOPS_PROGRESS_INTERVAL_MS",
    "BULKOPS_RETENTION_DAYS",
    "BULKOPS_IDEMPOTENCY_HOURS",
    "BULKOPS_WS_TICKET_MAX_AGE",
    "BULKOPS_APPROVAL_THRESHOLD",
):
    if _name in os.environ:
        globals()[_name] = env_int(_name, None)
if "BULKOPS_WEBHOOK_ALLOW_PRIVATE" in os.environ:
    BULKOPS_WEBHOOK_ALLOW_PRIVATE = env_bool("BULKOPS_WEBHOOK_ALLOW_PRIVATE")
if "BULKOPS_METRICS_TOKEN" in os.environ:
    BULKOPS_METRICS_TOKEN = os.environ["BULKOPS_METRICS_TOKEN"]

# LOG_FORMAT=json (default: one object per line, `extra` fields as keys) or plain.
LOGGING = logging_config(os.environ.get("LOG_FORMAT", "json"), os.environ.get("LOG_LEVEL", "INFO"))
logging.getLogger(__name__).debug("settings loaded: db=%s", DATABASES["default"]["ENGINE"])
