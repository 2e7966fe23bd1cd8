"""Test settings: the real services, on a Redis database of their own."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("BULKOPS_CHANNEL_PREFIX", "bulkops-test")
os.environ.setdefault("BULKOPS_THROTTLE_RATE", "100000/min")
os.environ.setdefault("BULKOPS_METRICS_THROTTLE_RATE", "100000/min")

from config.settings import *  # noqa: E402,F403

# Factories create many users: a fast hasher keeps the suite quick (never in production).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The example resource of docs/extending.md: an app of its own, in the tests only.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.bookshelf"]  # noqa: F405
SPECTACULAR_SETTINGS = {  # noqa: F405
    **SPECTACULAR_SETTINGS,  # noqa: F405
    "ENUM_NAME_OVERRIDES": {
        **SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"],  # noqa: F405
        "OperationResourceTypeEnum": ["books", "metrics", "tickets"],
    },
}
