"""The engine's signals: what a subscriber (progress, webhooks, telemetry, or another app's)
hears, and that it hears it only after the change is committed."""

import pytest
from django.db import connection

from bulkops import runner, services, signals
from bulkops.models import BulkOperation

from ..factories import AgentFactory, TicketFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def heard():
    """(signal, committed processed_items, committed status, inside a transaction?) per event."""
    events = []

    def listen(signal):
        def receiver(op, **kwargs):
            row = BulkOperation.objects.values_list("processed_items", "status").get(pk=op.pk)
            events.append((signal, *row, connection.in_atomic_block))

        return receiver

    chunk, finished = listen("chunk_committed"), listen("operation_finished")
    signals.chunk_committed.connect(chunk)
    signals.operation_finished.connect(finished)
    yield events
    signals.chunk_committed.disconnect(chunk)
    signals.operation_finished.disconnect(finished)


def test_a_subscriber_hears_every_committed_chunk_then_the_committed_finish(heard):
    agent = AgentFactory()
    ids = [TicketFactory().pk for _ in range(5)]
    request = services.Request(
        resource_type="tickets",
        operation_type="update_status",
        ids=ids,
        operation_data={"status": "resolved"},
        batch_size=2,
    )
    op, _ = services.start_operation(agent, request)
    runner.run_slice(op.pk, 0)
    assert heard == [
        ("chunk_committed", 2, "in_progress", False),
        ("chunk_committed", 4, "in_progress", False),
        ("chunk_committed", 5, "in_progress", False),
        ("operation_finished", 5, "completed", False),
    ]
