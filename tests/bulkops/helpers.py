"""Running real rq workers from tests; reading a page's form as a browser would post it."""

import html
import re

import django_rq
from rq import SimpleWorker


def work_off(queue_name="bulkops"):
    """Run a real rq worker in burst mode, in this process, until the queue is empty."""
    queue = django_rq.get_queue(queue_name)
    worker = SimpleWorker([queue], connection=queue.connection)
    worker.work(burst=True, with_scheduler=False)
    return worker


def hidden_inputs(response, marker):
    """The hidden fields of the page's first form whose markup holds `marker` (its action, a
    button…), as a browser posts them back."""
    forms = [part.split("</form>")[0] for part in response.content.decode().split("<form")[1:]]
    content = next(form for form in forms if marker in form)
    data = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', content):
        data.setdefault(name, []).append(html.unescape(value))
    return data
