"""Ticket imports (SPEC §12): JSON rows and files, through a real worker."""

import io

import pytest

from bulkops.models import BulkOperation
from tickets.models import Ticket, TicketEvent

from ..bulkops.helpers import work_off
from ..factories import AgentFactory, CategoryFactory, TicketFactory, UserFactory

URL = "/api/v1/tickets/imports/"


def run(client, body=None, *, upload=None, **options):
    """Start an import (JSON rows, or a file named by `upload` = (name, bytes)), work it off,
    and return (status body, items)."""
    if upload is not None:
        name, content = upload
        response = client.post(URL, {"file": io.BytesIO(content) | name_of(name), **options}, format="multipart")
    else:
        response = client.post(URL, {**body, **options}, format="json")
    assert response.status_code == 202, response.json()
    work_off()
    status = client.get(response.json()["links"]["self"]).json()
    items = client.get(response.json()["links"]["items"] + "?limit=1000").json()["items"]
    return status, items


class name_of:  # noqa: N801
    def __init__(self, name):
        self.name = name

    def __ror__(self, stream):
        stream.name = self.name
        return stream


@pytest.mark.django_db(transaction=True)
def test_an_upsert_creates_new_rows_and_updates_matching_ones_by_external_id(client_for):
    agent = AgentFactory()
    existing = TicketFactory(external_id="EXT-1", title="Old", priority="low")
    category = CategoryFactory()
    rows = [
        {"external_id": "EXT-1", "title": "Renamed", "priority": "high"},
        {"external_id": "EXT-2", "title": "New one", "category_id": category.pk},
        {"external_id": "EXT-3", "title": "Same", "status": "nonsense"},
    ]
    status, items = run(client_for(agent), {"rows": rows, "match_on": "external_id"})
    assert (status["status"], status["created_items"], status["updated_items"], status["failed_items"]) == (
        "partial", 1, 1, 1
    )
    existing.refresh_from_db()
    assert (existing.title, existing.priority, existing.version) == ("Renamed", "high", 2)
    created = Ticket.objects.get(external_id="EXT-2")
    assert (created.title, created.category_id, created.requester_id, created.version) == (
        "New one", category.pk, agent.pk, 1
    )
    assert [(i["position"], i["item_id"], i["status"], (i["result"] or {}).get("action")) for i in items] == [
        (0, str(existing.pk), "succeeded", "updated"),
        (1, str(created.pk), "succeeded", "created"),
        (2, "external_id:EXT-3", "failed", None),
    ]
    assert items[2]["error_code"] == "VALIDATION_ERROR"
    assert items[2]["result"] == {"error_details": {"status": ['"nonsense" is not a valid choice.']}}
    assert set(TicketEvent.objects.filter(ticket=existing).values_list("field", flat=True)) == {"title", "priority"}


@pytest.mark.django_db(transaction=True)
def test_a_csv_file_is_imported(client_for):
    agent = AgentFactory()
    content = "\ufefftitle,priority,assignee_id\r\nFirst,high,\r\n\"Second, with comma\",low,%d\r\n" % agent.pk
    status, items = run(client_for(agent), upload=("t.csv", content.encode()), action="create")
    assert (status["status"], status["created_items"]) == ("completed", 2), items
    assert list(Ticket.objects.order_by("pk").values_list("title", "priority", "assignee_id")) == [
        ("First", "high", None),
        ("Second, with comma", "low", agent.pk),
    ]
