"""WebSocket origin check and authentication: the session cookie (Channels' stack), or for
non-browser clients an `Authorization: Token|Bearer <key>` header. The signed `?ticket=` is
checked by the consumer, which knows the operation id the ticket must name."""

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from rest_framework.authtoken.models import Token


class BrowserOriginValidator(OriginValidator):
    """Channels' check against ALLOWED_HOSTS, except that a handshake with no Origin at all
    passes. Browsers always send one, so a cross-site page cannot leave it out; clients that
    leave it out (scripts, the `websockets` library) carry their own credentials."""

    def valid_origin(self, parsed_origin):
        return parsed_origin is None or super().valid_origin(parsed_origin)


def OriginCheck(inner):  # noqa: N802 - named like the validators it wraps
    allowed = AllowedHostsOriginValidator(inner).allowed_origins  # Channels' reading of the settings
    return BrowserOriginValidator(inner, allowed)


@database_sync_to_async
def user_from_header(header):
    keyword, _, key = header.partition(" ")
    if keyword.lower() not in {"token", "bearer"} or not key.strip():
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
