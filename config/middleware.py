import logging

from django.db import InterfaceError, OperationalError
from django.template.response import TemplateResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bulkops.api.mixins import NUL, NUL_MESSAGE
from bulkops.errors import sqlstate

from .exceptions import error_response
from .limits import body_limit, too_large_message
from .views import is_api

log = logging.getLogger("bulkops")
RETRY_AFTER = 5  # seconds a client is asked to wait while a service is down
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
# PostgreSQL errors that say the server is not there, not that the request is wrong: no
# SQLSTATE (no connection, none free in the pool), 08 connection exception, 57 operator
# intervention (shutting down, starting up).
DATABASE_DOWN_CLASSES = {"", "08", "57"}


def is_outage(exception):
    if isinstance(exception, REDIS_DOWN):
        return True
    return isinstance(exception, (OperationalError, InterfaceError)) and (sqlstate(exception) or "")[:2] in (
        DATABASE_DOWN_CLASSES
    )


class BodySizeLimitMiddleware:
    """Refuse a body over its limit (config/limits.py) with 413 before anything reads it, where
    the server has not already (the WSGI and test-client path; daphne refuses it while it
    arrives, config/server.py).

    Django checks DATA_UPLOAD_MAX_MEMORY_SIZE only for form data; DRF parses JSON straight
    from the stream.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = body_limit(request.path)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            return error_response(413, "REQUEST_TOO_LARGE", too_large_message(limit, length))
        return self.get_response(request)


class ServiceUnavailableMiddleware:
    """A view that needs Redis or PostgreSQL while it is down answers 503 with Retry-After, never
    a 500: the API's error body, or a plain page. The Redis-dependent checks (throttles) run
    before a view writes anything, and a database error rolls its transaction back, so such a
    request has created nothing."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_outage(exception):
            return None
        log.warning("service unavailable: %s %s: %s", request.method, request.path, exception)
        if is_api(request):
            message = "A service this request needs is unavailable; try again shortly."
            response = error_response(503, "SERVICE_UNAVAILABLE", message)
        else:
            response = TemplateResponse(request, "503.html", status=503).render()
        response["Retry-After"] = str(RETRY_AFTER)
        return response


class NulCharacterMiddleware:
    """Refuse a NUL character in a query parameter (`?search=%00`) or a header (a token, a
    cookie) with 400, for the API, the pages and the admin alike: PostgreSQL cannot store or
    compare text holding one, so whichever filter or lookup first passed it on would fail
    with a 500 — and HTTP allows none in a header. (JSON bodies: config.parsers.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        where = nul_parameter(request) or nul_header(request)
        if where:
            return error_response(400, "VALIDATION_ERROR", f"{where}: {NUL_MESSAGE}", {where: [NUL_MESSAGE]})
        return self.get_response(request)


def nul_parameter(request):
    for name, values in request.GET.lists():
        if NUL in name or any(NUL in value for value in values):
            return name
    return None


def nul_header(request):
    if any(NUL in name or NUL in value for name, value in request.COOKIES.items()):
        return "Cookie"  # a quoted cookie value may carry it escaped, as \000
    return next((name for name, value in request.headers.items() if NUL in value), None)
