"""The worker command: a real process."""

import signal
import subprocess

import pytest
from django.utils import timezone

from bulkops import services
from bulkops.models import BulkOperation

from ..factories import AgentFactory, TicketFactory
from ..processes import kill_group, start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_it_resumes_a_stale_operation_at_start_up_and_stops_cleanly_on_sigterm(tmp_path):
    agent = AgentFactory()
    ticket = TicketFactory()
    op, _ = services.start_operation(
        agent, services.Request("tickets", "update_status", [ticket.pk], {"status": "closed"})
    )
    BulkOperation.objects.filter(pk=op.pk).update(
        status="in_progress", heartbeat_at=timezone.now() - timezone.timedelta(minutes=5)
    )
    worker = start_worker(log_path=tmp_path / "worker.log")
    try:
        wait_for(lambda: BulkOperation.objects.get(pk=op.pk).is_finished, timeout=60, message="the operation")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    except subprocess.TimeoutExpired:
        pytest.fail("the worker did not stop on SIGTERM")
    finally:
        kill_group(worker)
    ticket.refresh_from_db()
    assert ticket.status == "closed"
