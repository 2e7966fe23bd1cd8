"""Request body limits, one rule for every door: daphne while the body arrives
(config/server.py), BodySizeLimitMiddleware for the WSGI and test-client path."""

from django.conf import settings


def body_limit(path):
    """The most bytes a request body to `path` may have. Paths that take larger bodies (file
    imports, which stream under their own limit) get their own answer here."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large_message(limit, length=None):
    if length is None:  # chunked: only that it went past the limit is known
        return f"The request body is over the limit of {limit} bytes."
    return f"The request body is {length} bytes; the limit is {limit}."
