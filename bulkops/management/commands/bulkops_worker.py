import logging
import time

import django_rq
from django.core.management.base import BaseCommand
from django.db import connections
from redis.exceptions import ConnectionError as RedisConnectionError

from bulkops import jobs

log = logging.getLogger("bulkops")


class Command(BaseCommand):
    help = (
        "Run an rq worker for the bulk engine. At start-up it resumes operations whose "
        "heartbeat stopped and keeps the periodic maintenance job scheduled; it waits for "
        "Redis to come back instead of exiting when Redis restarts."
    )

    def add_arguments(self, parser):
        parser.add_argument("queues", nargs="*", default=[jobs.QUEUE, "default"])
        parser.add_argument("--burst", action="store_true", help="Exit when the queues are empty.")

    def handle(self, *args, queues, burst, **options):
        while True:
            try:
                jobs.recover_stale()
                jobs.schedule_maintenance()
                # rq forks a work-horse per job: it must not inherit this process's connections.
                connections.close_all()
                django_rq.get_worker(*queues).work(burst=burst, with_scheduler=True)
                return
            except RedisConnectionError:
                log.warning("Redis unavailable; the worker retries in 1 s")
                connections.close_all()
                time.sleep(1)
