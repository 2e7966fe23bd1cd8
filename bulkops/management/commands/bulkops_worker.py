import logging
import time

import django_rq
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Worker

from bulkops import jobs

log = logging.getLogger("bulkops")


class MaintainingWorker(Worker):
    """An rq worker that also runs the engine's maintenance (jobs.maintenance) in its own
    periodic tasks: at start-up, then every BULKOPS_STALE_AFTER / 2 seconds.

    Running it here rather than as a scheduled job means it survives a Redis restart,
    which loses every queued and scheduled job."""

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        try:
            jobs.maintenance()
        except Exception:  # noqa: BLE001 - a failed round is retried at the next interval
            log.exception("maintenance failed")
        finally:
            connections.close_all()  # the next work-horse is forked from this process


class Command(BaseCommand):
    help = (
        "Run an rq worker for the bulk engine. It resumes operations whose heartbeat stopped "
        "(at start-up and periodically), deletes expired ones, and waits for Redis to come "
        "back instead of exiting when Redis restarts."
    )

    def add_arguments(self, parser):
        parser.add_argument("queues", nargs="*", default=[jobs.QUEUE, "default"])
        parser.add_argument("--burst", action="store_true", help="Exit when the queues are empty.")

    def handle(self, *args, queues, burst, **options):
        interval = max(1, settings.BULKOPS_STALE_AFTER // 2)
        while True:
            # rq forks a work-horse per job: it must not inherit this process's connections.
            connections.close_all()
            # A short worker TTL makes the idle dequeue wake up often enough for maintenance.
            worker = django_rq.get_worker(
                *queues, worker_class=MaintainingWorker, maintenance_interval=interval, worker_ttl=interval + 15
            )
            try:
                worker.work(burst=burst, with_scheduler=True)
            except RedisConnectionError:
                log.warning("Redis unavailable; the worker starts again in 1 s")
                time.sleep(1)
                continue
            # rq notes the time of a SIGINT/SIGTERM: then the loop ended because it was asked to.
            if burst or worker._shutdown_requested_date is not None:
                return
            log.warning("the worker loop ended unexpectedly; starting it again in 1 s")
            time.sleep(1)
