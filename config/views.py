"""Error pages: API paths get the API's JSON error body, the rest Django's pages."""

from django.views import defaults

from .exceptions import error_response


def is_api(request):
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    if is_api(request):
        return error_response(404, "NOT_FOUND", f"No such endpoint: {request.path}")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api(request):
        return error_response(500, "INTERNAL_ERROR", "Internal server error")
    return defaults.server_error(request)
