"""What daphne does with a request before the application sees it: the body limit, and the
length of a chunked body.

daphne (through twisted) reads the whole body before it calls the ASGI application, then hands
it over in one go, so nothing in the application — an ASGI middleware included — can refuse a
body before it has cost the time and memory. The limit is enforced here, as the bytes arrive:
on the Content-Length as soon as the headers are in, and on the count of bytes received for a
chunked body, before authentication or any other work.
"""

import json

import daphne.http_protocol

from .exceptions import error_body
from .limits import body_limit, too_large_message


class BodyLimitedRequest(daphne.http_protocol.WebRequest):
    """daphne's request, answering 413 REQUEST_TOO_LARGE and closing the connection as soon as
    the body passes its limit (as twisted does with a malformed request)."""

    refused = False

    def gotLength(self, length):  # noqa: N802 - twisted's name
        super().gotLength(length)
        # The request line is parsed (the channel holds its target); the request's own `path`
        # is set only once the whole body is in.
        self.body_limit = body_limit(self.channel._path.split(b"?", 1)[0].decode("latin-1"))
        self.body_received = 0
        if length is not None and length > self.body_limit:
            self.refuse(too_large_message(self.body_limit, length))

    def handleContentChunk(self, data):  # noqa: N802 - twisted's name
        if self.refused:
            return
        self.body_received += len(data)
        if self.body_received > self.body_limit:
            self.refuse(too_large_message(self.body_limit))
            return
        super().handleContentChunk(data)

    def process(self):
        # A chunked body is whole by now: say its length, as a proxy that de-chunks does.
        # Django (and DRF) read a body only as far as Content-Length says, none without one.
        if self.requestHeaders.hasHeader(b"transfer-encoding"):
            self.requestHeaders.removeHeader(b"transfer-encoding")
            self.requestHeaders.setRawHeaders(b"content-length", [str(self.body_received).encode()])
        return super().process()

    def refuse(self, message):
        self.refused = True
        body = json.dumps(error_body("REQUEST_TOO_LARGE", message)).encode()
        head = (
            "HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        self.channel.transport.write(head.encode() + body)
        self.channel.loseConnection()


def limit_request_bodies():
    """Make daphne build its HTTP requests as BodyLimitedRequest (its factory takes the class
    from its module); called by config/asgi.py, which daphne imports before it listens."""
    daphne.http_protocol.WebRequest = BodyLimitedRequest
