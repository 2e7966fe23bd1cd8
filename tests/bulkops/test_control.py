"""Pause, resume and throttle (SPEC §13) through the API, with a real rq worker in this process."""

from contextlib import contextmanager

import pytest
from django.test import override_settings
from django.utils import timezone

from bulkops import control, jobs, signals
from bulkops.models import BulkOperation
from tickets.models import Ticket, TicketEvent

from ..factories import AgentFactory, ApproverFactory, TicketFactory, UserFactory
from .helpers import work_off

pytestmark = pytest.mark.django_db(transaction=True)

ANY = "/api/v1/bulk-operations/"
RESOLVE = {"resource_type": "tickets", "operation_type": "update_status", "operation_data": {"status": "resolved"}}


@pytest.fixture
def agent():
    return AgentFactory()


@pytest.fixture
def client(agent, client_for):
    return client_for(agent)


def create(client, count=3, **options):
    ids = [t.pk for t in TicketFactory.create_batch(count)]
    response = client.post(ANY, {**RESOLVE, "ids": ids, **options}, format="json")
    assert response.status_code == 202, response.json()
    return BulkOperation.objects.get(pk=response.json()["operation_id"])


def post(client, op, verb):
    return client.post(f"{ANY}{op.pk}/{verb}/")


def error_code(response):
    return response.json()["error"]["code"]


def pending_items(op):
    return op.items.filter(status="pending").count()


def assert_every_item_applied_once(op):
    op.refresh_from_db()
    assert op.status == "completed", op.status
    assert (op.processed_items, op.successful_items, op.failed_items, op.skipped_items) == (
        op.total_items,
        op.total_items,
        0,
        0,
    )
    assert op.items.exclude(status="succeeded").count() == 0
    targets = [int(t) for t in op.items.values_list("target_id", flat=True)]
    assert set(Ticket.objects.filter(pk__in=targets).values_list("status", "version")) == {("resolved", 2)}
    assert TicketEvent.objects.filter(bulk_operation=op).count() == op.total_items


@contextmanager
def pausing_after_chunks(user, op, every):
    """Pause the operation (as its owner would, from another request) after every `every`
    chunks the worker commits."""
    chunks = []

    def pause(sender, op, **signal):
        chunks.append(op.pk)
        if len(chunks) % every == 0:
            control.pause_operation(user, op.pk)

    signals.chunk_committed.connect(pause, weak=False)
    try:
        yield chunks
    finally:
        signals.chunk_committed.disconnect(pause)


# --- pause and resume ----------------------------------------------------------------------


def test_a_pending_operation_pauses_at_once_and_its_queued_job_ends_without_work(client, agent):
    op = create(client)
    response = post(client, op, "pause")
    assert response.status_code == 202
    data = response.json()
    assert (data["status"], data["processed_items"]) == ("paused", 0)
    assert data["paused_at"]
    work_off()  # the slice job runs, sees the pause, and ends
    op.refresh_from_db()
    assert (op.status, pending_items(op), jobs.queue().count) == ("paused", 3, 0)
    assert set(Ticket.objects.values_list("version", flat=True)) == {1}


def test_resume_enqueues_the_remaining_work_and_it_finishes_once(client):
    op = create(client)
    post(client, op, "pause")
    work_off()
    response = post(client, op, "resume")
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["paused_at"]) == ("in_progress", None)
    work_off()
    assert_every_item_applied_once(op)


def test_counters_and_items_stay_exact_across_many_pause_resume_cycles(client, agent):
    op = create(client, count=40, batch_size=5)
    cycles = 0
    with pausing_after_chunks(agent, op, every=2):
        while True:
            work_off()
            op.refresh_from_db()
            if op.status != "paused":
                break
            # Paused at a chunk boundary: the chunk in flight committed whole, the rest waits.
            assert op.processed_items % 5 == 0 and pending_items(op) == op.total_items - op.processed_items
            assert jobs.queue().count == 0
            cycles += 1
            assert post(client, op, "resume").status_code == 202
    assert cycles >= 3
    assert_every_item_applied_once(op)


def test_a_pause_that_races_the_last_chunk_lets_the_operation_finish(client, agent):
    """Paused after the last chunk committed, before the slice finalised: nothing is left to
    pause, so the operation completes — and pausing it then is a conflict."""
    op = create(client, count=4, batch_size=2)
    with pausing_after_chunks(agent, op, every=2):
        work_off()
    op.refresh_from_db()
    assert op.status == "completed"
    assert_every_item_applied_once(op)
    response = post(client, op, "pause")
    assert (response.status_code, error_code(response)) == (409, "CONFLICT")


@pytest.mark.parametrize("status", ["completed", "partial", "failed", "cancelled", "cancelling", "paused"])
def test_pause_from_a_status_that_cannot_pause_is_a_conflict(client, status):
    op = create(client)
    BulkOperation.objects.filter(pk=op.pk).update(status=status)
    response = post(client, op, "pause")
    assert (response.status_code, error_code(response)) == (409, "CONFLICT")
    assert BulkOperation.objects.get(pk=op.pk).status == status


@pytest.mark.parametrize("status", ["pending", "in_progress", "cancelling", "completed", "cancelled"])
def test_resume_of_an_operation_that_is_not_paused_is_a_conflict(client, status):
    op = create(client)
    BulkOperation.objects.filter(pk=op.pk).update(status=status)
    jobs.queue().empty()
    response = post(client, op, "resume")
    assert (response.status_code, error_code(response)) == (409, "CONFLICT")
    assert (BulkOperation.objects.get(pk=op.pk).status, jobs.queue().count) == (status, 0)


def test_a_sync_operation_cannot_be_paused(client):
    op = create(client)
    BulkOperation.objects.filter(pk=op.pk).update(execution="sync")
    assert post(client, op, "pause").status_code == 409


def test_staff_may_pause_and_resume_anyones_operation_and_other_users_see_nothing(client, client_for, staff):
    op = create(client)
    assert post(client_for(UserFactory()), op, "pause").status_code == 404
    assert post(client_for(staff), op, "pause").status_code == 202
    assert post(client_for(staff), op, "resume").status_code == 202


def test_an_approver_who_may_see_an_operation_may_not_pause_or_throttle_it(client, client_for):
    """Approving is not owning: the operation they approved stays its owner's to control."""
    op = create(client)
    BulkOperation.objects.filter(pk=op.pk).update(approved_at=timezone.now())
    approver = client_for(ApproverFactory())
    assert approver.get(f"{ANY}{op.pk}/").status_code == 200
    assert post(approver, op, "pause").status_code == 404
    assert approver.patch(f"{ANY}{op.pk}/", {"max_items_per_second": 5}, format="json").status_code == 404
    op.refresh_from_db()
    assert (op.status, op.max_items_per_second) == ("pending", None)


def test_cancelling_a_paused_operation_cancels_it_at_once(client):
    op = create(client)
    post(client, op, "pause")
    response = post(client, op, "cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    op.refresh_from_db()
    assert (op.status, op.skipped_items, pending_items(op)) == ("cancelled", 3, 0)


def test_recovery_never_resumes_a_paused_operation(client):
    op = create(client)
    post(client, op, "pause")
    jobs.queue().empty()
    long_ago = timezone.now() - timezone.timedelta(hours=1)
    BulkOperation.objects.filter(pk=op.pk).update(heartbeat_at=long_ago, created_at=long_ago)
    assert jobs.recover_stale() == []
    assert jobs.queue().count == 0


def test_resume_leaves_a_slice_whose_job_still_waits_alone_and_gives_the_others_a_new_generation(client):
    with override_settings(BULKOPS_SLICE_MIN_ITEMS=2):
        op = create(client, count=4)
    assert op.slices == 2
    post(client, op, "pause")
    queue = jobs.queue()
    queue.remove(f"bulkop-{op.pk}-1")  # slice 1's job ran and ended on the pause; slice 0's still waits
    queue.fetch_job(f"bulkop-{op.pk}-1").delete()
    post(client, op, "resume")
    assert queue.job_ids == [f"bulkop-{op.pk}-0", f"bulkop-{op.pk}-1"]
    # A job that rq will not run but still holds the id (finished, or a horse ending its last
    # chunk) is never deleted under it: the slice gets its next generation instead.
    post(client, op, "pause")
    queue.empty()
    queue.enqueue(jobs.run_slice, str(op.pk), 0, job_id=f"bulkop-{op.pk}-0").set_status("started")
    post(client, op, "resume")
    assert sorted(queue.job_ids) == [f"bulkop-{op.pk}-0", f"bulkop-{op.pk}-0-g1", f"bulkop-{op.pk}-1"]
    work_off()
    assert_every_item_applied_once(op)


def test_paused_operations_count_towards_the_active_cap(client):
    with override_settings(BULKOPS_MAX_ACTIVE_PER_USER=1):
        op = create(client)
        post(client, op, "pause")
        ids = [TicketFactory().pk]
        response = client.post(ANY, {**RESOLVE, "ids": ids}, format="json")
    assert (response.status_code, error_code(response)) == (429, "TOO_MANY_ACTIVE_OPERATIONS")


def test_the_history_filters_paused_operations(client):
    paused, running = create(client), create(client)
    post(client, paused, "pause")
    data = client.get(f"{ANY}?status=paused").json()
    assert [o["operation_id"] for o in data["operations"]] == [str(paused.pk)]
    assert str(running.pk) not in str(data)
    assert client.get(f"{ANY}stats/").json()["by_status"]["paused"] == 1


def test_pause_and_resume_are_announced_after_they_commit(client):
    seen = []

    def receiver(sender, op, **signal):
        seen.append((op.pk, BulkOperation.objects.get(pk=op.pk).status))

    signals.status_changed.connect(receiver, weak=False)
    try:
        op = create(client)
        post(client, op, "pause")
        post(client, op, "resume")
    finally:
        signals.status_changed.disconnect(receiver)
    assert seen == [(op.pk, "paused"), (op.pk, "in_progress")]


# --- throttle -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0, -1, 100_001, "10", 2.5, True])
def test_a_bad_throttle_on_create_is_refused_and_nothing_is_stored(client, rate):
    ids = [t.pk for t in TicketFactory.create_batch(2)]
    response = client.post(ANY, {**RESOLVE, "ids": ids, "max_items_per_second": rate}, format="json")
    assert (response.status_code, error_code(response)) == (400, "VALIDATION_ERROR")
    assert "max_items_per_second" in response.json()["error"]["details"]
    assert BulkOperation.objects.count() == 0 and jobs.queue().count == 0


@pytest.mark.parametrize("options", [{"execution": "sync"}, {"mode": "atomic"}])
def test_only_async_partial_operations_take_a_throttle(client, options):
    ids = [t.pk for t in TicketFactory.create_batch(2)]
    response = client.post(ANY, {**RESOLVE, "ids": ids, "max_items_per_second": 10, **options}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["max_items_per_second"] == [
        "Only async partial operations can be throttled."
    ]
    assert BulkOperation.objects.count() == 0


def test_a_throttle_given_on_create_is_stored_and_shown(client):
    op = create(client, max_items_per_second=100_000)
    assert client.get(f"{ANY}{op.pk}/").json()["max_items_per_second"] == 100_000


def test_patch_changes_the_throttle_of_a_running_operation_and_answers_with_the_status(client):
    op = create(client)
    response = client.patch(f"{ANY}{op.pk}/", {"max_items_per_second": 25}, format="json")
    assert response.status_code == 200
    assert (response.json()["operation_id"], response.json()["max_items_per_second"]) == (str(op.pk), 25)
    assert "errors" in response.json() and "links" in response.json()
    response = client.patch(f"{ANY}{op.pk}/", {"max_items_per_second": None}, format="json")
    assert (response.status_code, response.json()["max_items_per_second"]) == (200, None)


@pytest.mark.parametrize(
    "body",
    [{"max_items_per_second": 0}, {"max_items_per_second": "5"}, {"max_items_per_second": 5, "x": 1}, [5], "5"],
)
def test_patch_with_a_bad_body_is_refused_and_changes_nothing(client, body):
    op = create(client, max_items_per_second=7)
    response = client.patch(f"{ANY}{op.pk}/", body, format="json")
    assert (response.status_code, error_code(response)) == (400, "VALIDATION_ERROR")
    assert BulkOperation.objects.get(pk=op.pk).max_items_per_second == 7


def test_patch_without_a_change_answers_with_the_operation_as_it_is(client):
    op = create(client, max_items_per_second=7)
    response = client.patch(f"{ANY}{op.pk}/", {}, format="json")
    assert (response.status_code, response.json()["max_items_per_second"]) == (200, 7)


def test_patch_of_a_finished_operation_is_a_conflict(client):
    op = create(client)
    work_off()
    response = client.patch(f"{ANY}{op.pk}/", {"max_items_per_second": 5}, format="json")
    assert (response.status_code, error_code(response)) == (409, "CONFLICT")
    assert BulkOperation.objects.get(pk=op.pk).max_items_per_second is None
