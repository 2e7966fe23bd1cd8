"""Bounded database connections (SPEC §16): a daphne process holds at most its pool of
BULKOPS_DB_POOL_MAX connections, whatever the request concurrency."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from rest_framework.authtoken.models import Token

from bench.probes import Poller
from bulkops.models import BulkOperation

from . import servers
from .factories import AgentFactory, TicketFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
POOL_MAX = 4
REQUESTS = 200


class SessionCounter(Poller):
    """The most PostgreSQL sessions daphne held at any sample while the block ran."""

    def __init__(self):
        super().__init__()
        self.most = 0

    def run(self):
        with servers.maintenance_connection() as probe:
            while not self.done.wait(0.02):
                self.most = max(self.most, servers.count_sessions(probe, "daphne"))


def get(url, headers):
    return requests.get(url, headers=headers, timeout=60).status_code


def test_200_concurrent_requests_use_at_most_the_pool_and_postgresql_accepts_new_connections():
    TicketFactory()
    headers = {"Authorization": f"Token {Token.objects.create(user=AgentFactory()).key}"}
    with servers.daphne(BULKOPS_DB_POOL_MAX=str(POOL_MAX)) as url:
        with SessionCounter() as counter, ThreadPoolExecutor(max_workers=REQUESTS) as pool:
            codes = list(pool.map(get, [f"{url}/api/v1/tickets/?limit=1"] * REQUESTS, [headers] * REQUESTS))
        with servers.maintenance_connection() as fresh:  # PostgreSQL still takes a new client
            held_after = servers.count_sessions(fresh, "daphne")

    assert codes == [200] * REQUESTS
    assert 1 <= counter.most <= POOL_MAX
    assert held_after <= POOL_MAX


def test_a_worker_holds_at_most_two_connections_while_it_runs_an_operation(client_for):
    agent = AgentFactory()
    ids = [t.pk for t in TicketFactory.create_batch(300)]
    body = {
        "ticket_ids": ids,
        "operation_type": "set_priority",
        "operation_data": {"priority": "high"},
        "batch_size": 5,
    }
    created = client_for(agent).post("/api/v1/tickets/bulk-operations/", body, format="json")
    assert created.status_code == 202
    operation = BulkOperation.objects.get(pk=created.json()["operation_id"])
    most = 0
    with servers.worker(), servers.maintenance_connection() as probe:
        deadline = time.monotonic() + 60
        while operation.status not in {"completed", "partial", "failed"} and time.monotonic() < deadline:
            most = max(most, servers.count_sessions(probe, "worker"))
            time.sleep(0.02)
            operation.refresh_from_db()

    assert operation.successful_items == 300
    assert 1 <= most <= 2


def test_after_postgresql_ends_the_pools_sessions_the_next_requests_succeed():
    """What a PostgreSQL restart does to the pool's idle connections: each is checked before a
    request gets it, and a dead one is replaced."""
    headers = {"Authorization": f"Token {Token.objects.create(user=AgentFactory()).key}"}
    with servers.daphne() as url, servers.maintenance_connection() as probe:
        assert requests.get(f"{url}/api/v1/tickets/", headers=headers, timeout=30).status_code == 200
        ended = probe.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            [servers.application("daphne")],
        ).fetchone()[0]
        assert ended >= 1
        codes = [requests.get(f"{url}/api/v1/tickets/", headers=headers, timeout=30).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
