"""Live progress of one operation: a snapshot on connect, then the worker's events.

Group messages are at-most-once, so the database is the truth: the snapshot on connect,
events that are older than what the client already has are dropped, and a client that
connects after the end gets the snapshot and `operation_completed` at once.

Each worker process throttles what it publishes, but several workers can share one
operation; so each client also gets at most one `progress_update` per
BULKOPS_PROGRESS_INTERVAL_MS: a newer one replaces one held back, none is lost at the end.
"""

import asyncio
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth import get_user_model

from . import conf
from .models import BulkOperation
from .progress import group_name
from .representation import OperationSerializer, completed_payload
from .wsauth import read_ticket

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def ticket_user(ticket, op_id):
    user_id = read_ticket(ticket, op_id)
    return get_user_model().objects.filter(pk=user_id, is_active=True).first() if user_id else None


@database_sync_to_async
def snapshot(user, op_id):
    """(status representation, completed event or None), or None if `user` may not see it."""
    op = BulkOperation.objects.visible_to(user).filter(pk=op_id).first()
    if op is None:
        return None
    state = {"type": "snapshot", **OperationSerializer(op, context={"request": None}).data}
    return state, completed_payload(op) if op.is_finished else None


def interval():
    return conf.PROGRESS_INTERVAL_MS / 1000


def reached(state):
    """How far an operation has got: items processed or skipped."""
    return state.get("processed_items", 0) + state.get("skipped_items", 0)


class OperationConsumer(AsyncJsonWebsocketConsumer):
    group = None
    finished = False
    high_water = 0  # items processed or skipped, as far as this client knows
    held = None  # the newest progress_update not sent yet (too soon after the last one)
    sent_at = float("-inf")
    flusher = None  # the task that sends `held` when the interval is up

    async def connect(self):
        self.op_id = self.scope["url_route"]["kwargs"]["op_id"]
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            ticket = parse_qs(self.scope.get("query_string", b"").decode()).get("ticket", [None])[0]
            user = await ticket_user(ticket, self.op_id) if ticket else None
        # Accept first: a close before the handshake has no code, only an HTTP 403.
        await self.accept()
        if user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # Join before reading the snapshot, so that no event falls between the two.
        self.group = group_name(self.op_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        found = await snapshot(user, self.op_id)
        if found is None:
            await self.leave()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        state, completed = found
        self.high_water = reached(state)
        await self.send_json(state)
        if completed:
            await self.finish(completed)

    async def leave(self):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None

    async def finish(self, payload):
        """The last message: leave the group first, so that no event follows it."""
        self.finished = True
        await self.leave()
        if self.flusher:
            self.flusher.cancel()
        if self.held:
            await asyncio.sleep(self.sent_at + interval() - time.monotonic())
            await self.flush()
        await self.send_json(payload)
        await self.close()

    async def disconnect(self, code):
        if self.flusher:
            self.flusher.cancel()
        await self.leave()

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Clients only listen; anything they send (JSON or not) is ignored."""

    async def operation_progress(self, event):
        payload = event["payload"]
        if self.finished or reached(payload) < self.high_water:
            return  # overtaken: the client already has newer numbers
        self.high_water = reached(payload)
        self.held = payload
        wait = self.sent_at + interval() - time.monotonic()
        if wait <= 0:
            await self.flush()
        elif self.flusher is None:
            self.flusher = asyncio.create_task(self.flush_after(wait))

    async def flush_after(self, wait):
        await asyncio.sleep(wait)
        self.flusher = None
        await self.flush()

    async def flush(self):
        if self.held is None:
            return
        payload, self.held = self.held, None
        self.sent_at = time.monotonic()
        await self.send_json(payload)

    async def operation_status(self, event):
        """A status change no chunk reports: after any progress held back, which is older."""
        if not self.finished:
            await self.flush()
            await self.send_json(event["payload"])

    async def operation_completed(self, event):
        if not self.finished:
            await self.finish(event["payload"])
