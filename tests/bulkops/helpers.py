"""Running real rq workers from tests."""

import django_rq
from rq import SimpleWorker


def work_off(queue_name="bulkops"):
    """Run a real rq worker in burst mode, in this process, until the queue is empty."""
    queue = django_rq.get_queue(queue_name)
    worker = SimpleWorker([queue], connection=queue.connection)
    worker.work(burst=True, with_scheduler=False)
    return worker
