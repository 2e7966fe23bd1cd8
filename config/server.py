"""What daphne does with a request before the application sees it: the body limit, and the
length of a chunked body.

daphne (through twisted) reads the whole body before it calls the ASGI application, then hands
it over in one go, so nothing in the application — an ASGI middleware included — can refuse a
body before it has cost the time and memory. The limit is enforced here, as the bytes arrive:
on the Content-Length as soon as the headers are in, and on the count of bytes received for a
chunked body, before authentication or any other work.
"""

import asyncio
import json

import daphne.http_protocol

from .exceptions import error_body
from .limits import body_limit, too_large_message

STREAMED_BODY = 1024 * 1024  # bytes: a larger body goes to the application a few chunks at a time
FEED_CHUNK = 64 * 1024
FEED_AHEAD = 4  # chunks waiting in the application's queue at most


class BodyFeed:
    """What daphne puts a request's messages into, for a large body: daphne would put the whole
    body into the application's queue at once (150 MB of an upload in memory); this drops
    those chunks and hands the application the body from twisted's file on disk instead, a
    few chunks ahead of what it has read."""

    def __init__(self, queue, content):
        self.queue, self.content = queue, content
        self.feeding = None

    def put_nowait(self, message):
        if message["type"] != "http.request":
            if self.feeding is not None:
                self.feeding.cancel()
            self.queue.put_nowait(message)
        elif not message["more_body"]:  # daphne has read the file through: feed it from the start
            self.feeding = asyncio.ensure_future(self.feed())

    async def feed(self):
        self.content.seek(0)
        more = True
        while more:
            while self.queue.qsize() >= FEED_AHEAD:
                await asyncio.sleep(0.001)
            try:
                chunk = self.content.read(FEED_CHUNK)
            except ValueError:  # the request is over and its file closed
                return
            more = len(chunk) == FEED_CHUNK
            self.queue.put_nowait({"type": "http.request", "body": chunk, "more_body": more})


class BodyLimitedRequest(daphne.http_protocol.WebRequest):
    """daphne's request, answering 413 REQUEST_TOO_LARGE and closing the connection as soon as
    the body passes its limit (as twisted does with a malformed request)."""

    refused = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # twisted parses a multipart or urlencoded POST body itself, into `args` that daphne
        # never reads: a whole copy of the body and ten times its size in email.Message objects
        # (a 30 MB import upload cost 270 MB here). Django parses the body, from a file.
        self._parsePOSTFormSubmission = False

    @property
    def application_queue(self):
        return self.__dict__.get("_application_queue")

    @application_queue.setter
    def application_queue(self, queue):
        large = self.__dict__.get("body_received", 0) > STREAMED_BODY
        self.__dict__["_application_queue"] = BodyFeed(queue, self.content) if queue is not None and large else queue

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
