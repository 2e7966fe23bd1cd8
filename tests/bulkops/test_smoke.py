import pytest

from bulkops.models import BulkOperation
from tickets.models import Ticket, TicketEvent

from ..factories import AgentFactory, TicketFactory
from .helpers import work_off


@pytest.mark.django_db(transaction=True)
def test_async_update_status_runs_on_a_worker(client_for):
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(7)
    ids = [t.pk for t in tickets] + [999999]
    response = client_for(agent).post(
        "/api/v1/tickets/bulk-operations/",
        {
            "ticket_ids": ids,
            "operation_type": "update_status",
            "operation_data": {"status": "resolved"},
            "batch_size": 3,
        },
        format="json",
    )
    assert response.status_code == 202, response.json()
    op_id = response.json()["operation_id"]
    work_off()
    op = BulkOperation.objects.get(pk=op_id)
    assert op.status == "partial"
    assert (op.successful_items, op.failed_items, op.total_items) == (7, 1, 8)
    assert set(Ticket.objects.values_list("status", flat=True)) == {"resolved"}
    assert set(Ticket.objects.values_list("version", flat=True)) == {2}
    assert TicketEvent.objects.filter(bulk_operation_id=op_id).count() == 7
    body = client_for(agent).get(f"/api/v1/bulk-operations/{op_id}/").json()
    assert body["errors"] == [
        {"item_id": "999999", "position": 7, "error_code": "NOT_FOUND", "error_message": "tickets 999999 not found"}
    ]


@pytest.mark.django_db(transaction=True)
def test_sync_update_status(client_for):
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(3)
    response = client_for(agent).post(
        "/api/v1/bulk-operations/",
        {
            "resource_type": "tickets",
            "ids": [t.pk for t in tickets],
            "operation_type": "update_status",
            "operation_data": {"status": "closed"},
            "execution": "sync",
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "completed"
