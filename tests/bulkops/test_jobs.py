import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from rq.job import JobStatus

from bulkops import conf, jobs, services
from bulkops.models import BulkOperation
from tickets.models import Ticket

from ..factories import AgentFactory, TicketFactory
from ..processes import free_port
from .helpers import work_off

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tickets():
    return TicketFactory.create_batch(3)


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


def test_an_operation_whose_enqueue_fails_after_commit_is_accepted_and_the_sweep_enqueues_it(client_for, tickets):
    agent = AgentFactory()
    dead = {
        name: {**config, "URL": f"redis://127.0.0.1:{free_port()}/0"} for name, config in settings.RQ_QUEUES.items()
    }
    body = {"resource_type": "tickets", "ids": [t.pk for t in tickets], "operation_type": "update_status"}
    with override_settings(RQ_QUEUES=dead):  # Redis goes away between the commit and the enqueue
        response = client_for(agent).post(
            "/api/v1/bulk-operations/", {**body, "operation_data": {"status": "closed"}}, format="json"
        )
    assert response.status_code == 202, response.content
    op = BulkOperation.objects.get(pk=response.json()["operation_id"])
    assert (op.status, jobs.queue().job_ids) == ("pending", [])
    # The committed pending operation is its own outbox entry: a sweep enqueues it, once.
    assert jobs.recover_stale() == [op.pk]
    assert jobs.recover_stale() == []
    assert jobs.queue().job_ids == [f"bulkop-{op.pk}-0"]
    work_off()
    op.refresh_from_db()
    assert op.status == "completed"
    assert set(Ticket.objects.values_list("status", "version")) == {("closed", 2)}


@override_settings(BULKOPS_SLICE_MIN_ITEMS=1)
def test_recovery_leaves_operations_waiting_in_a_long_queue_alone(tickets):
    """Issue 11.4: seven operations pending behind a long queue, one running whose worker died
    while its sibling slices still wait: none is lost, so nothing is enqueued again."""
    ids = [t.pk for t in tickets]
    ops = [
        services.start_operation(user, services.Request("tickets", "update_status", ids, {"status": "closed"}))[0]
        for user in [AgentFactory()] * 4 + [AgentFactory()] * 3
    ]
    assert {op.slices for op in ops} == {3}
    long_ago = timezone.now() - timezone.timedelta(minutes=10)
    BulkOperation.objects.update(created_at=long_ago)
    BulkOperation.objects.filter(pk=ops[0].pk).update(status="in_progress", started_at=long_ago, heartbeat_at=long_ago)
    before = sorted(jobs.queue().job_ids)
    assert len(before) == 21
    for _ in range(3):
        assert jobs.recover_stale() == []
    assert sorted(jobs.queue().job_ids) == before


def test_a_sweep_runs_once_per_interval_whichever_process_asks():
    agent = AgentFactory()
    ticket = TicketFactory()
    op, _ = services.start_operation(
        agent, services.Request("tickets", "update_status", [ticket.pk], {"status": "closed"})
    )
    jobs.queue().empty()  # lost with Redis
    jobs.queue().connection.set(jobs.SWEEP_LOCK, "1", ex=60)  # another worker swept a moment ago
    jobs.sweep_if_due()
    assert jobs.queue().job_ids == []
    jobs.queue().connection.delete(jobs.SWEEP_LOCK)  # the interval is over
    jobs.sweep_if_due()
    assert jobs.queue().job_ids == [f"bulkop-{op.pk}-0"]


def test_a_pending_operation_whose_job_started_long_ago_is_resumed_and_one_just_started_is_not():
    """A worker killed between taking the job and starting the operation: rq itself would
    notice the job abandoned only 60–90 s later."""
    agent = AgentFactory()
    op, _ = services.start_operation(
        agent, services.Request("tickets", "update_status", [TicketFactory().pk], {"status": "closed"})
    )
    job = jobs.queue().fetch_job(f"bulkop-{op.pk}-0")
    jobs.queue().remove(job)  # taken by a worker
    job.set_status(JobStatus.STARTED)
    job.started_at = timezone.now()
    job.save()
    assert jobs.recover_stale() == []
    job.started_at = timezone.now() - timezone.timedelta(seconds=conf.STALE_AFTER + 1)
    job.save()
    assert jobs.recover_stale() == [op.pk]
    # Under the slice's next generation: the dead job is left alone, never deleted under a
    # process that might still be ending its chunk.
    assert jobs.queue().job_ids == [f"bulkop-{op.pk}-0-g1"]
    work_off()
    op.refresh_from_db()
    assert op.status == "completed"
