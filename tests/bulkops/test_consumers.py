"""The WebSocket at /ws/bulk-operations/{id}/ (SPEC §6), through the real ASGI application
(origin check, session/header/ticket auth) or with scope["user"] set explicitly."""

from contextlib import asynccontextmanager
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from bulkops import jobs, progress, representation, runner, services
from bulkops.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from bulkops.routing import websocket_urlpatterns
from bulkops.services import Request
from config.asgi import application

from ..conftest import api_client
from ..factories import AgentFactory, ApproverFactory, BulkOperationFactory, StaffFactory, TicketFactory, UserFactory

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
HOST = (b"host", b"127.0.0.1:8000")  # every real handshake names its host; ORIGIN is its own origin
FINAL_KEYS = {
    "type",
    "operation_id",
    "final_status",
    "successful_items",
    "failed_items",
    "skipped_items",
    "completed_at",
}

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest_asyncio.fixture(autouse=True)
async def close_thread_connections():
    """The consumer's queries run in asgiref's thread, whose connection would outlive the
    test (CONN_MAX_AGE) and keep the test database from being dropped."""
    yield
    await sync_to_async(connections.close_all)()


@asynccontextmanager
async def socket(op, headers=(ORIGIN,), query="", user=None):
    """A client of the operation's socket; as `user` (scope set directly) or through the
    whole application with `headers`. Always disconnected at the end."""
    path = f"/ws/bulk-operations/{op.pk if hasattr(op, 'pk') else op}/{query}"
    if user is not None:
        client = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
        client.scope["user"] = user
    else:
        client = WebsocketCommunicator(application, path, headers=[HOST, *headers])
    try:
        yield client
    finally:
        await client.disconnect()


async def closed_with(client):
    """Accepted, then closed at once: the close code."""
    connected, _ = await client.connect()
    assert connected
    message = await client.receive_output()
    assert message["type"] == "websocket.close"
    return message["code"]


async def snapshot_of(client):
    connected, _ = await client.connect()
    assert connected
    return await client.receive_json_from()


def session_cookie(user):
    browser = Client()
    browser.force_login(user)
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode())


def status_of(op, user):
    return api_client(user).get(f"/api/v1/bulk-operations/{op.pk}/").json()


@pytest.fixture
def owner():
    return UserFactory()


@pytest.fixture
def op(owner):
    return BulkOperationFactory(user=owner, items=["succeeded", "failed", "pending"], status="in_progress")


# --- who may connect ------------------------------------------------------------------------


async def test_the_owner_connects_with_the_session_cookie(op, owner):
    cookie = await sync_to_async(session_cookie)(owner)
    async with socket(op, headers=(ORIGIN, cookie)) as client:
        assert (await snapshot_of(client))["operation_id"] == str(op.pk)


@pytest.mark.parametrize("keyword", ["Token", "Bearer"])
async def test_a_script_connects_with_an_authorization_header(op, owner, keyword):
    token = await sync_to_async(Token.objects.create)(user=owner)
    header = (b"authorization", f"{keyword} {token.key}".encode())
    async with socket(op, headers=(header,)) as client:  # no Origin: not a browser
        assert (await snapshot_of(client))["type"] == "snapshot"


async def test_the_ticket_in_the_status_links_lets_a_client_in(op, owner):
    link = (await sync_to_async(status_of)(op, owner))["links"]["websocket"]
    url = urlsplit(link)
    assert url.path == f"/ws/bulk-operations/{op.pk}/"
    async with socket(op, query=f"?{url.query}") as client:
        assert (await snapshot_of(client))["operation_id"] == str(op.pk)


async def test_no_credentials_close_4401(op):
    async with socket(op) as client:
        assert await closed_with(client) == CLOSE_UNAUTHENTICATED


async def test_a_wrong_token_closes_4401(op):
    async with socket(op, headers=(ORIGIN, (b"authorization", b"Token nope"))) as client:
        assert await closed_with(client) == CLOSE_UNAUTHENTICATED


async def test_a_nul_in_the_authorization_header_closes_4401(op):
    # PostgreSQL cannot compare text holding NUL: looking the key up would raise, not refuse.
    async with socket(op, headers=(ORIGIN, (b"authorization", b"Token abc\x00def"))) as client:
        assert await closed_with(client) == CLOSE_UNAUTHENTICATED


async def test_a_forged_or_expired_ticket_closes_4401(op, owner, settings):
    link = (await sync_to_async(status_of)(op, owner))["links"]["websocket"]
    query = urlsplit(link).query
    async with socket(op, query=f"?{query}x") as client:
        assert await closed_with(client) == CLOSE_UNAUTHENTICATED
    settings.BULKOPS_WS_TICKET_MAX_AGE = -1
    async with socket(op, query=f"?{query}") as client:
        assert await closed_with(client) == CLOSE_UNAUTHENTICATED


async def test_a_ticket_for_another_operation_closes_4401(op, owner):
    other = await sync_to_async(BulkOperationFactory)(user=owner)
    query = urlsplit((await sync_to_async(status_of)(other, owner))["links"]["websocket"]).query
    async with socket(op, query=f"?{query}") as client:
        assert await closed_with(client) == CLOSE_UNAUTHENTICATED


async def test_an_unknown_operation_closes_4404(owner):
    async with socket("00000000-0000-0000-0000-000000000000", user=owner) as client:
        assert await closed_with(client) == CLOSE_NOT_FOUND


async def test_another_users_operation_closes_4404(op):
    stranger = await sync_to_async(UserFactory)()
    async with socket(op, user=stranger) as client:
        assert await closed_with(client) == CLOSE_NOT_FOUND


async def test_staff_may_watch_any_operation(op):
    staff = await sync_to_async(StaffFactory)()
    async with socket(op, user=staff) as client:
        assert (await snapshot_of(client))["operation_id"] == str(op.pk)


async def test_a_cross_origin_handshake_is_refused(op, owner):
    cookie = await sync_to_async(session_cookie)(owner)
    async with socket(op, headers=((b"origin", b"http://evil.example"), cookie)) as client:
        connected, _ = await client.connect()
        assert not connected


# --- what it sends -------------------------------------------------------------------------


async def test_the_snapshot_is_the_status_representation(op, owner):
    status = await sync_to_async(status_of)(op, owner)
    async with socket(op, user=owner) as client:
        state = await snapshot_of(client)
    assert state["type"] == "snapshot"
    assert set(state) - {"type"} == set(status)
    counters = ("status", "total_items", "processed_items", "successful_items", "failed_items", "progress_percentage")
    assert {k: state[k] for k in counters} == {k: status[k] for k in counters}
    assert state["errors"] == status["errors"]
    assert state["links"]["websocket"] == f"/ws/bulk-operations/{op.pk}/"  # no ticket in a snapshot


async def test_progress_and_completion_from_the_engine_reach_the_client(owner):
    def start():
        agent = AgentFactory()
        tickets = TicketFactory.create_batch(6)
        request = Request("tickets", "update_status", [t.pk for t in tickets], {"status": "resolved"}, batch_size=2)
        return agent, services.start_operation(agent, request)[0]

    agent, op = await sync_to_async(start)()
    async with socket(op, user=agent) as client:
        assert (await snapshot_of(client))["status"] == "pending"
        await sync_to_async(jobs.run_slice)(str(op.pk), 0)  # what the rq job runs
        events = [await client.receive_json_from(timeout=5)]
        while events[-1]["type"] != "operation_completed":
            events.append(await client.receive_json_from(timeout=5))
        assert (await client.receive_output(timeout=1))["type"] == "websocket.close"
    updates = [e for e in events if e["type"] == "progress_update"]
    assert updates and events[-1]["type"] == "operation_completed"
    assert [e["processed_items"] for e in updates] == sorted(e["processed_items"] for e in updates)
    assert {k: updates[-1][k] for k in ("processed_items", "successful_items", "progress_percentage")} == {
        "processed_items": 6,
        "successful_items": 6,
        "progress_percentage": 100,
    }
    assert set(events[-1]) == FINAL_KEYS
    assert (events[-1]["final_status"], events[-1]["successful_items"]) == ("completed", 6)


async def test_a_late_client_gets_the_final_state_and_the_completion(owner):
    done = await sync_to_async(BulkOperationFactory)(user=owner, items=["succeeded", "failed"], status="partial")
    async with socket(done, user=owner) as client:
        assert (await snapshot_of(client))["status"] == "partial"
        completed = await client.receive_json_from()
        assert (completed["type"], completed["final_status"], completed["failed_items"]) == (
            "operation_completed",
            "partial",
            1,
        )
        assert (await client.receive_output())["type"] == "websocket.close"


async def test_an_event_older_than_the_snapshot_is_dropped(op, owner):
    layer, group = get_channel_layer(), progress.group_name(op.pk)
    async with socket(op, user=owner) as client:
        assert (await snapshot_of(client))["processed_items"] == 2
        stale = {**representation.progress_payload(op), "processed_items": 1, "skipped_items": 0}
        await layer.group_send(group, {"type": "operation.progress", "payload": stale})
        assert await client.receive_nothing(timeout=0.3)
        newer = {**stale, "processed_items": 3}
        await layer.group_send(group, {"type": "operation.progress", "payload": newer})
        assert (await client.receive_json_from())["processed_items"] == 3


async def test_a_client_gets_at_most_one_update_per_interval_and_always_the_newest(op, owner):
    layer, group = get_channel_layer(), progress.group_name(op.pk)

    def update(processed):
        payload = {**representation.progress_payload(op), "processed_items": processed}
        return layer.group_send(group, {"type": "operation.progress", "payload": payload})

    async with socket(op, user=owner) as client:
        await snapshot_of(client)
        for processed in (3, 4, 5, 6):  # four workers' events in a burst
            await update(processed)
        assert (await client.receive_json_from())["processed_items"] == 3
        assert await client.receive_nothing(timeout=0.15)  # held back: within the interval
        assert (await client.receive_json_from(timeout=1))["processed_items"] == 6
        assert await client.receive_nothing(timeout=0.3)
        await update(7)
        done = {**representation.completed_payload(op), "final_status": "completed"}
        await layer.group_send(group, {"type": "operation.completed", "payload": done})
        assert [(await client.receive_json_from(timeout=1))["type"] for _ in range(2)] == [
            "progress_update",
            "operation_completed",
        ]


async def test_what_a_client_sends_is_ignored(op, owner):
    async with socket(op, user=owner) as client:
        await snapshot_of(client)
        await client.send_to(text_data="not json")
        await client.send_json_to({"type": "cancel"})
        assert await client.receive_nothing(timeout=0.2)


# --- status changes no chunk reports (SPEC §13) ---------------------------------------------


async def test_an_approval_reaches_the_owners_socket_as_status_changed(owner):
    op = await sync_to_async(BulkOperationFactory)(user=owner, items=["pending"] * 2, status="awaiting_approval")
    approver = await sync_to_async(ApproverFactory)()
    async with socket(op, user=owner) as client:
        assert (await snapshot_of(client))["status"] == "awaiting_approval"
        await sync_to_async(services.approve_operation)(approver, op.pk)
        event = await client.receive_json_from(timeout=5)
    assert {key: event[key] for key in ("type", "operation_id", "status", "approved_by")} == {
        "type": "status_changed",
        "operation_id": str(op.pk),
        "status": "pending",
        "approved_by": approver.pk,
    }
    assert set(event) == {"type", *representation.OperationSerializer.Meta.fields}


async def test_a_scheduled_operation_that_starts_says_so(owner):
    op = await sync_to_async(BulkOperationFactory)(
        user=owner, items=["pending"], status="scheduled", run_at=timezone.now() - timedelta(seconds=1)
    )
    async with socket(op, user=owner) as client:
        assert (await snapshot_of(client))["status"] == "scheduled"
        await sync_to_async(runner.start)(op.pk)
        event = await client.receive_json_from(timeout=5)
    assert (event["type"], event["status"]) == ("status_changed", "in_progress")
