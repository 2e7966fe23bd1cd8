"""Live progress of one operation: a snapshot on connect, then the worker's events."""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth import get_user_model

from .models import BulkOperation
from .progress import group_name
from .wsauth import read_ticket

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def ticket_user(ticket, op_id):
    user_id = read_ticket(ticket, op_id)
    return get_user_model().objects.filter(pk=user_id, is_active=True).first() if user_id else None


@database_sync_to_async
def snapshot(user, op_id):
    """The status representation from the database, or None if `user` may not see it."""
    from .api.serializers import OperationSerializer

    op = BulkOperation.objects.visible_to(user).filter(pk=op_id).first()
    if op is None:
        return None
    return {"type": "snapshot", **OperationSerializer(op, context={"request": None}).data}


class OperationConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.op_id = self.scope["url_route"]["kwargs"]["op_id"]
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            ticket = parse_qs(self.scope.get("query_string", b"").decode()).get("ticket", [None])[0]
            user = await ticket_user(ticket, self.op_id) if ticket else None
        await self.accept()
        if user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # Join before reading the snapshot, so that no event falls between the two.
        self.group = group_name(self.op_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        state = await snapshot(user, self.op_id)
        if state is None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.send_json(state)

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        """Clients only listen; anything they send is ignored."""

    async def operation_progress(self, event):
        await self.send_json(event["payload"])

    async def operation_completed(self, event):
        await self.send_json(event["payload"])
        await self.close()
