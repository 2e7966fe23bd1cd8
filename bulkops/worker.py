"""The rq worker class of every supported worker command, and the entry module of rq's own
`rq worker -w bulkops.worker.RecoveringWorker`: imported first, it sets Django up there."""

import django
from django.apps import apps

if not apps.ready:  # under `rq worker`, nothing has set Django up yet
    django.setup()

from django.db import connections  # noqa: E402 - needs Django set up
from rq import Worker  # noqa: E402

from . import jobs  # noqa: E402


class RecoveringWorker(Worker):
    """An rq worker that runs rq's scheduler and also sweeps (jobs.sweep_if_due: resume lost
    operations, delete expired ones) in rq's own periodic maintenance, every
    jobs.sweep_interval() seconds, idle or not.

    Recovery runs here rather than as a scheduled rq job because a Redis restart loses every
    queued and scheduled job, and recovery must survive exactly that. `manage.py rqworker`
    uses this class through settings.RQ["WORKER_CLASS"], `manage.py bulkops_worker` too."""

    # An idle worker retries a lost Redis with backoff: carry on within seconds of its return,
    # not rq's default of up to a minute.
    max_connection_wait_time = 5.0

    def __init__(self, *args, **kwargs):
        # Whatever the command line says (rq's default is 600 s): recovery needs it this often.
        # rq's own registry cleanup then runs as often too, under its own lock.
        kwargs["maintenance_interval"] = jobs.sweep_interval()
        super().__init__(*args, **kwargs)

    def work(self, *args, **kwargs):
        # rq's scheduler enqueues scheduled operations (`run_at`) when their time comes: every
        # worker runs it (one of them holds its lock), so no command line can leave it out.
        kwargs["with_scheduler"] = True
        return super().work(*args, **kwargs)

    @property
    def dequeue_timeout(self):
        # An idle worker blocks in the dequeue: wake up in time for the next sweep.
        return min(super().dequeue_timeout, self.maintenance_interval)

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        try:
            jobs.sweep_if_due()
        finally:
            connections.close_all()  # the next work-horse is forked from this process
