"""`manage.py bulkops_worker`: an rq worker on the engine's queues that outlives Redis outages."""

import logging
import time

import django_rq
from django.core.management.base import BaseCommand
from django.db import connections
from redis.exceptions import RedisError

from bulkops import jobs

log = logging.getLogger("bulkops")


class Command(BaseCommand):
    help = (
        "Run an rq worker for the bulk engine (settings.RQ['WORKER_CLASS']: it resumes lost "
        "operations and deletes expired ones), and wait for Redis instead of exiting whenever "
        "Redis goes away."
    )

    def add_arguments(self, parser):
        parser.add_argument("queues", nargs="*", default=[jobs.QUEUE, "default"])
        parser.add_argument("--burst", action="store_true", help="Exit when the queues are empty.")

    def handle(self, *args, queues, burst, **options):
        while True:
            # rq forks a work-horse per job: it must not inherit this process's connections.
            connections.close_all()
            try:
                # Inside the try: building the worker talks to Redis too (CLIENT SETNAME).
                worker = django_rq.get_worker(*queues)
                worker.work(burst=burst, with_scheduler=True)
            except RedisError as exc:
                log.warning("Redis unavailable (%s); the worker starts again in 1 s", exc)
                time.sleep(1)
                continue
            # rq notes the time of a SIGINT/SIGTERM: then the loop ended because it was asked to.
            if burst or worker._shutdown_requested_date is not None:
                return
            log.warning("the worker loop ended unexpectedly; starting it again in 1 s")
            time.sleep(1)
