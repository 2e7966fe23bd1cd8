"""A large body (an operation's items as CSV) sent as it is read, under any server."""

import csv
from itertools import batched

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest

ROWS_PER_PIECE = 2_000


class Echo:
    """csv.writer's file: `writerow` returns the line instead of writing it."""

    def write(self, value):
        return value


def csv_pieces(header, rows):
    """The CSV text in pieces of ROWS_PER_PIECE rows: a piece per row made the server send a
    million items as a million messages."""
    writer = csv.writer(Echo())
    yield writer.writerow(header)
    for batch in batched(rows, ROWS_PER_PIECE):
        yield "".join(map(writer.writerow, batch))


def streamed(request, pieces):
    """`pieces` (a generator) as the server can send them while they are read.

    Under ASGI (daphne), Django collects a synchronous iterator whole before it sends the first
    byte: a million items' CSV would sit in the server's memory. There each piece is made in
    turn instead, in the request's own thread, where the database cursor it reads lives
    (thread-sensitive sync_to_async)."""
    if isinstance(request, ASGIRequest):
        return _one_by_one(pieces)
    return pieces


async def _one_by_one(pieces):
    take = sync_to_async(next)
    try:
        while (piece := await take(pieces, None)) is not None:
            yield piece
    finally:  # a client that leaves early: close the cursor now, not with the connection
        await sync_to_async(pieces.close)()
