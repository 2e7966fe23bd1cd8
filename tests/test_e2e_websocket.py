"""End to end: the API on a real daphne, a real rq worker, and a WebSocket client that uses
the ticket from `links.websocket` (SPEC §6)."""

import json

import pytest
import requests
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from . import servers
from .factories import AgentFactory, TicketFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
COUNTERS = ("processed_items", "successful_items", "failed_items", "skipped_items")


@pytest.fixture(scope="module")
def server(django_db_setup):
    with servers.daphne() as url:
        yield url


def test_a_websocket_client_sees_snapshot_progress_and_completion_that_match_the_status(server):
    agent = AgentFactory()
    api = requests.Session()
    api.headers["Authorization"] = f"Token {Token.objects.create(user=agent).key}"
    ids = [t.pk for t in TicketFactory.create_batch(150)] + [10**9]  # the last one does not exist
    created = api.post(
        f"{server}/api/v1/tickets/bulk-operations/",
        json={"ticket_ids": ids, "operation_type": "update_status", "operation_data": {"status": "resolved"},
              "batch_size": 5},
        timeout=10,
    )  # fmt: skip
    assert created.status_code == 202, created.text
    link = created.json()["links"]["websocket"]
    assert link.startswith(f"ws://{server.removeprefix('http://')}/ws/bulk-operations/") and "?ticket=" in link

    # Connected before any worker runs: the snapshot says pending, then the events come.
    with connect(link, open_timeout=10) as socket:
        snapshot = json.loads(socket.recv(timeout=10))
        assert (snapshot["type"], snapshot["status"], snapshot["total_items"]) == ("snapshot", "pending", 151)
        events = []
        with servers.worker():
            while not events or events[-1]["type"] != "operation_completed":
                events.append(json.loads(socket.recv(timeout=30)))
        with pytest.raises(ConnectionClosedOK):
            socket.recv(timeout=5)  # the server closes after the completion

    status = api.get(created.json()["links"]["self"], timeout=10).json()
    updates = [e for e in events if e["type"] == "progress_update"]
    completed = events[-1]
    assert updates, events
    assert [e["processed_items"] for e in updates] == sorted(e["processed_items"] for e in updates)
    assert {k: updates[-1][k] for k in COUNTERS} == {k: status[k] for k in COUNTERS}
    assert updates[-1]["progress_percentage"] == status["progress_percentage"] == 100
    assert completed["final_status"] == status["status"] == "partial"
    assert (
        {k: completed[k] for k in ("successful_items", "failed_items", "skipped_items")}
        == {
            "successful_items": status["successful_items"],
            "failed_items": status["failed_items"],
            "skipped_items": status["skipped_items"],
        }
        == {"successful_items": 150, "failed_items": 1, "skipped_items": 0}
    )
