"""Error pages (API paths get the API's JSON error body, the rest Django's pages) and the
login doors — the token endpoint, /login/, the admin's login — throttled after failed logins."""

from functools import wraps

from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.shortcuts import render
from django.views import defaults
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled
from rest_framework.settings import api_settings

from .exceptions import error_response
from .throttling import LOGIN_THROTTLED, count_failed_login, login_retry_after


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


# Every failed authenticate() with a request counts, whichever door it came through (the token
# endpoint, the login page, the admin's login). Connected when the URLconf imports this module,
# before any request reaches a view.
@receiver(user_login_failed, dispatch_uid="config.views.count_failed_login")
def on_login_failed(sender, credentials, request=None, **kwargs):
    if request is not None:
        count_failed_login(request, credentials.get("username"))


class ObtainToken(ObtainAuthToken):
    """POST /api/v1/auth/token/: refused with 429 while its user name or address is throttled,
    before the password is checked."""

    parser_classes = api_settings.DEFAULT_PARSER_CLASSES

    def post(self, request, *args, **kwargs):
        # A body that is not an object has no user name; the serializer answers it with 400.
        username = request.data.get("username") if isinstance(request.data, dict) else None
        wait = login_retry_after(request, username)
        if wait:
            raise Throttled(wait, detail=LOGIN_THROTTLED.format(wait=wait))
        return super().post(request, *args, **kwargs)


def throttle_logins(view):
    """A login page (/login/, the admin's) that answers 429 with the message while the user name
    or address is throttled, before the password is checked."""

    @wraps(view)
    def throttled_view(request, *args, **kwargs):
        wait = login_retry_after(request, request.POST.get("username")) if request.method == "POST" else 0
        if not wait:
            return view(request, *args, **kwargs)
        context = {"form": AuthenticationForm(request), "throttled": LOGIN_THROTTLED.format(wait=wait)}
        response = render(request, "registration/login.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response

    return throttled_view
