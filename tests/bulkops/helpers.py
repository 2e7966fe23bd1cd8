"""Running real rq workers from tests; posting a page's form as browsers would."""

import html
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import django_rq
from django.db import connections
from django.test import Client
from rq import SimpleWorker

from bulkops import services
from bulkops.models import BulkOperation, Status

from ..factories import ApproverFactory


def work_off(queue_name="bulkops"):
    """Run a real rq worker in burst mode, in this process, until the queue is empty."""
    queue = django_rq.get_queue(queue_name)
    worker = SimpleWorker([queue], connection=queue.connection)
    worker.work(burst=True, with_scheduler=False)
    return worker


def approve_if_awaiting(op_id):
    """Approve the operation as another person if it waits for that (a delete by a non-staff
    user, SPEC §13): for tests about something else."""
    if BulkOperation.objects.filter(pk=op_id, status=Status.AWAITING_APPROVAL).exists():
        services.approve_operation(ApproverFactory(), op_id)


def hidden_inputs(response, marker):
    """The hidden fields of the page's first form whose markup holds `marker` (its action, a
    button…), as a browser posts them back."""
    forms = [part.split("</form>")[0] for part in response.content.decode().split("<form")[1:]]
    content = next(form for form in forms if marker in form)
    data = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', content):
        data.setdefault(name, []).append(html.unescape(value))
    return data


def double_click(user, url, data):
    """POST `data` to `url` twice at the same moment, as `user`; the two answers' Location."""
    both = threading.Barrier(2)

    def click(_):
        browser = Client()
        browser.force_login(user)
        both.wait()
        try:
            return browser.post(url, data)["Location"]
        finally:
            connections.close_all()  # this thread's own connection

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(click, range(2)))
