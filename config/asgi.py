import os

from django.core.asgi import get_asgi_application

from config.database import pool_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
pool_connections()
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from bulkops.routing import websocket_urlpatterns  # noqa: E402
from bulkops.wsmiddleware import OriginCheck, WebSocketAuthMiddleware  # noqa: E402
from config.server import limit_request_bodies  # noqa: E402

limit_request_bodies()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # A cross-site handshake is refused (the HTTP CSRF check's origin rule) before any auth.
        "websocket": OriginCheck(WebSocketAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
