"""Progress events, published from the worker after a chunk commits.

Group messages are at-most-once and each send costs ~9 ms, so sends are throttled to one
per BULKOPS_PROGRESS_INTERVAL_MS per operation and process; the final event always goes
out, and a client that connects late gets a snapshot from the database.
"""

import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from . import conf, telemetry
from .models import BulkOperation, BulkOperationItem, Execution
from .representation import completed_payload, progress_payload, status_payload

log = logging.getLogger("bulkops")
_last_sent = {}


def group_name(op_id):
    return f"bulkop.{op_id}"


def send(op_id, message):
    """Send to the operation's group; a Redis outage must never stop the work itself."""
    try:
        async_to_sync(get_channel_layer().group_send)(group_name(op_id), message)
    except Exception:  # noqa: BLE001
        log.warning("progress event not delivered", extra={"operation_id": str(op_id)}, exc_info=True)


def due(op_id):
    """Whether a progress event may go out now. The interval holds for the operation as a
    whole, not per process: N slices on N workers still publish at most one event per
    interval. A local check first spares Redis a round trip on most chunks."""
    interval = conf.PROGRESS_INTERVAL_MS
    now = time.monotonic()
    if (now - _last_sent.get(op_id, -interval)) * 1000 < interval:
        return False
    _last_sent[op_id] = now
    try:
        return bool(telemetry.redis().set(f"bulkops:progress:{op_id}", 1, nx=True, px=interval))
    except RedisError:
        return False  # Redis is down: the event could not be delivered anyway


def chunk_done(op, last_position=None, **signal):
    """After a chunk commits (`chunk_committed`): publish progress unless one went out less than
    the interval ago (or the operation is synchronous: its id reaches the client only with the result)."""
    if op.execution == Execution.SYNC or not due(op.pk):
        return
    fresh = BulkOperation.objects.get(pk=op.pk)
    last = (
        BulkOperationItem.objects.filter(operation_id=op.pk, position=last_position)
        .values_list("target_id", flat=True)
        .first()
    )
    send(op.pk, {"type": "operation.progress", "payload": progress_payload(fresh, last)})


def operation_finished(op, **signal):
    """The last progress event and the completion event (`operation_finished`)."""
    _last_sent.pop(op.pk, None)
    if op.execution != Execution.SYNC:  # nobody can be listening: the id was not out yet
        send(op.pk, {"type": "operation.progress", "payload": progress_payload(op)})
        send(op.pk, {"type": "operation.completed", "payload": completed_payload(op)})


def status_changed(op, **signal):
    """A status change no chunk reports (`status_changed`): the status representation."""
    send(op.pk, {"type": "operation.status", "payload": status_payload(op)})
