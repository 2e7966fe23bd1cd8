"""The WebSocket origin check (SPEC §9, §16): a browser's handshake is accepted only from an
allowed origin, matched exactly — scheme, host and port — as Django's HTTP CSRF check does."""

import pytest
from channels.testing import WebsocketCommunicator

from bulkops.wsmiddleware import OriginCheck

pytestmark = pytest.mark.asyncio
HOST = "127.0.0.1:8000"


async def accept(scope, receive, send):
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})


async def handshake(origin, host=HOST, scheme=None):
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin is not None else [])
    client = WebsocketCommunicator(OriginCheck(accept), "/ws/bulk-operations/x/", headers=headers)
    if scheme:
        client.scope["scheme"] = scheme
    try:
        connected, _ = await client.connect()
        return connected
    finally:
        await client.disconnect()


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:9999",  # another port
        "https://127.0.0.1:8000",  # another scheme
        "https://127.0.0.1",
        "http://127.0.0.1",  # the default port is another port
        "http://localhost:8000",  # an allowed host, but not this one
        "http://evil.example",
        "null",
    ],
)
async def test_a_handshake_from_another_origin_is_refused(origin):
    assert not await handshake(origin)


async def test_the_exact_same_origin_is_accepted():
    assert await handshake(f"http://{HOST}")


async def test_over_wss_the_same_origin_is_https():
    assert await handshake(f"https://{HOST}", scheme="wss")
    assert not await handshake(f"http://{HOST}", scheme="wss")


async def test_a_host_outside_allowed_hosts_is_refused_even_from_its_own_origin():
    assert not await handshake("http://evil.example", host="evil.example")


async def test_csrf_trusted_origins_are_accepted_exactly_or_by_subdomain_pattern(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://bulkops.example.com", "https://*.example.org"]
    assert await handshake("https://bulkops.example.com")
    assert not await handshake("http://bulkops.example.com")
    assert not await handshake("https://bulkops.example.com:8443")
    assert await handshake("https://app.example.org")
    assert not await handshake("http://app.example.org")


async def test_a_client_that_sends_no_origin_passes_to_authentication():
    """Browsers always send one; scripts that leave it out carry their own credentials."""
    assert await handshake(None)
