import pytest
from django.utils import timezone

from bulkops import jobs, services
from bulkops.models import BulkOperation

from ..factories import AgentFactory, TicketFactory
from .helpers import work_off

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_slice_is_enqueued_once_under_a_fixed_job_id():
    jobs.enqueue_slices("op-1", 3)
    jobs.enqueue_slices("op-1", 3)  # a duplicate enqueue replaces, it does not add
    queue = jobs.queue()
    assert sorted(queue.job_ids) == ["bulkop-op-1-0", "bulkop-op-1-1", "bulkop-op-1-2"]


def test_a_pending_operation_whose_job_was_lost_is_resumed_and_finishes():
    agent = AgentFactory()
    ticket = TicketFactory()
    op, _ = services.start_operation(
        agent, services.Request("tickets", "update_status", [ticket.pk], {"status": "closed"})
    )
    jobs.queue().empty()  # as if Redis had restarted before a worker took the job
    BulkOperation.objects.filter(pk=op.pk).update(created_at=timezone.now() - timezone.timedelta(minutes=10))
    assert jobs.recover_stale() == [op.pk]
    work_off()
    op.refresh_from_db()
    ticket.refresh_from_db()
    assert (op.status, ticket.status) == ("completed", "closed")
