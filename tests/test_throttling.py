"""The bulk throttle holds under concurrency and across processes (SPEC §9, §16): N concurrent
requests against a limit of L let exactly L through, the rest get 429 with Retry-After."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from rest_framework.authtoken.models import Token

from bulkops.models import BulkOperation

from . import servers
from .factories import AgentFactory, TicketFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
LIMIT = 3
REQUESTS = 40


def test_concurrent_bulk_creates_on_two_servers_let_exactly_the_limit_through():
    ticket = TicketFactory()
    headers = {"Authorization": f"Token {Token.objects.create(user=AgentFactory()).key}"}
    body = {"ticket_ids": [ticket.pk], "operation_type": "set_priority", "operation_data": {"priority": "high"}}
    env = {"BULKOPS_THROTTLE_RATE": f"{LIMIT}/min", "BULKOPS_MAX_ACTIVE_PER_USER": str(REQUESTS)}
    start = threading.Barrier(REQUESTS)

    def create(url):
        start.wait()
        return requests.post(f"{url}/api/v1/tickets/bulk-operations/", json=body, headers=headers, timeout=60)

    with servers.daphne(**env) as first, servers.daphne(**env) as second:
        with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
            responses = list(pool.map(create, [first, second] * (REQUESTS // 2)))

    codes = sorted(r.status_code for r in responses)
    assert codes == [202] * LIMIT + [429] * (REQUESTS - LIMIT)
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "THROTTLED"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert BulkOperation.objects.count() == LIMIT
