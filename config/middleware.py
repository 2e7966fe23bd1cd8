from django.conf import settings

from .exceptions import error_response
from .parsers import NUL, NUL_MESSAGE


class BodySizeLimitMiddleware:
    """Refuse a body over DATA_UPLOAD_MAX_MEMORY_SIZE with 413 before anything reads it.

    Django checks that limit only for form data; DRF parses JSON straight from the stream.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            message = f"The request body is {length} bytes; the limit is {limit}."
            return error_response(413, "REQUEST_TOO_LARGE", message)
        return self.get_response(request)


class QueryStringNulMiddleware:
    """Refuse a NUL character in any query parameter (`?search=%00`) with 400, for the API,
    the pages and the admin alike: PostgreSQL cannot compare text holding one, so whichever
    filter first passed it on would fail with a 500. (JSON bodies: config.parsers.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for name, values in request.GET.lists():
            if NUL in name or any(NUL in value for value in values):
                message = f"{name}: {NUL_MESSAGE}"
                return error_response(400, "VALIDATION_ERROR", message, {name: [NUL_MESSAGE]})
        return self.get_response(request)
