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
