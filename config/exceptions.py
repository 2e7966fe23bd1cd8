"""One error body for the whole API: {"error": {"code", "message", "details"}}."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from bulkops.errors import ItemError, first_message

CODES = {
    exceptions.ParseError: "MALFORMED_REQUEST",
    exceptions.ValidationError: "VALIDATION_ERROR",
    exceptions.NotAuthenticated: "NOT_AUTHENTICATED",
    exceptions.AuthenticationFailed: "NOT_AUTHENTICATED",
    exceptions.PermissionDenied: "PERMISSION_DENIED",
    exceptions.NotFound: "NOT_FOUND",
    exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    exceptions.Throttled: "THROTTLED",
}


def exception_handler(exc, context):
    if isinstance(exc, ItemError):
        exc = exc.as_api_exception()
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):  # a model or form check: bad input, not a crash
        exc = exceptions.ValidationError(getattr(exc, "message_dict", None) or exc.messages)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "error_code", None) or next((c for cls, c in CODES.items() if isinstance(exc, cls)), "ERROR")
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        message = first_message(data)
        details = data
    else:
        message = str(data.get("detail", exc)) if isinstance(data, dict) else str(data)
        details = None
    response.data = error_body(code, message, details)
    return response


def error_body(code, message, details=None):
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(status, code, message, details=None):
    """The same body outside DRF (middleware, error pages)."""
    return JsonResponse(error_body(code, message, details), status=status)
