"""WebSocket origin check and authentication: the session cookie (Channels' stack), or for
non-browser clients an `Authorization: Token|Bearer <key>` header. The signed `?ticket=` is
checked by the consumer, which knows the operation id the ticket must name."""

from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import is_same_domain, split_domain_port, validate_host
from rest_framework.authtoken.models import Token

from .api.mixins import NUL


def same_origin(scope, origin):
    """The handshake's own origin: the scheme the server sees and the Host it was sent to
    (a host ALLOWED_HOSTS names), as Django's CSRF check builds it for HTTP."""
    host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
    domain, _ = split_domain_port(host)
    scheme = "https" if scope.get("scheme") in {"wss", "https"} else "http"
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS) and origin == f"{scheme}://{host}"


def trusted_origin(origin):
    """CSRF_TRUSTED_ORIGINS, read as Django's CSRF check reads it: exact, or `scheme://*.domain`."""
    parsed = urlsplit(origin)
    for pattern in settings.CSRF_TRUSTED_ORIGINS:
        if "*" not in pattern:
            if origin == pattern:
                return True
            continue
        allowed = urlsplit(pattern)
        if parsed.scheme == allowed.scheme and is_same_domain(parsed.netloc, allowed.netloc.lstrip("*")):
            return True
    return False


class OriginCheck(BaseMiddleware):
    """Refuse a handshake whose Origin is neither its own origin nor a trusted one — scheme,
    host and port all count — before any authentication. A handshake with no Origin at all
    passes: browsers always send one, so a cross-site page cannot leave it out; clients that
    leave it out (scripts, the `websockets` library) carry their own credentials."""

    async def __call__(self, scope, receive, send):
        origin = dict(scope.get("headers", [])).get(b"origin")
        if origin is not None:
            origin = origin.decode("latin-1")
            if not (same_origin(scope, origin) or trusted_origin(origin)):
                return await WebsocketDenier()(scope, receive, send)
        return await super().__call__(scope, receive, send)


@database_sync_to_async
def user_from_header(header):
    keyword, _, key = header.partition(" ")
    # A NUL cannot be in any key, and PostgreSQL refuses to compare text holding one.
    if keyword.lower() not in {"token", "bearer"} or not key.strip() or NUL in key:
        return None
    token = Token.objects.select_related("user").filter(key=key.strip()).first()
    return token.user if token and token.user.is_active else None


class TokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            header = dict(scope.get("headers", [])).get(b"authorization")
            found = await user_from_header(header.decode("latin-1")) if header else None
            if found is not None:
                scope["user"] = found
        return await super().__call__(scope, receive, send)


def WebSocketAuthMiddleware(inner):  # noqa: N802 - named like the middleware classes it stacks
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
