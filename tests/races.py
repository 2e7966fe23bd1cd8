"""Staging a race between two requests, for real: one transaction holds a row uncommitted
while the request under test runs in a thread of its own."""

import threading
import time

from django.db import connection, connections, transaction


def while_uncommitted(write, request):
    """Run `request` while another transaction holds what `write()` wrote, uncommitted: the
    request finds the value free, then waits on that row in the unique index; the other
    commits, and the request's write is refused. Returns the request's answer."""
    answers = []

    def run():
        try:
            answers.append(request())
        finally:
            connections.close_all()  # this thread's own connection

    with transaction.atomic():
        write()
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 10
        with connection.cursor() as cursor:
            while time.monotonic() < deadline:  # until the request waits for this transaction
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
                )
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.01)
            else:
                raise AssertionError("the request never waited for the other transaction")
    thread.join(10)
    return answers[0]
