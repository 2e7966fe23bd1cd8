import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis as redis_client
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from bulkops import telemetry

from ..factories import AgentFactory, TicketFactory

ROOT = Path(__file__).resolve().parents[2]


def scrape(**headers):
    """GET /metrics as a scraper does (no session) ⇒ {(name, ((label, value), …)): value}."""
    response = Client().get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples[name, tuple(sorted(labels.items()))]


def create(client, ids, execution="async", status="resolved"):
    response = client.post(
        "/api/v1/tickets/bulk-operations/",
        {
            "ticket_ids": ids,
            "operation_type": "update_status",
            "operation_data": {"status": status},
            "execution": execution,
        },
        format="json",
    )
    assert response.status_code in (200, 202), response.json()
    return response.json()


def run_worker_process():
    """A real worker in its own process (`bulkops_worker --burst`), on the test database."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "bulkops_worker", "--burst", "bulkops"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.django_db
def test_metrics_are_open_to_a_scraper_without_a_session():
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"# TYPE bulkops_operations gauge" in response.content


@pytest.mark.django_db
def test_it_reports_zero_for_every_status_that_has_no_operation():
    samples = scrape()
    assert value(samples, "bulkops_operations", resource_type="tickets", status="completed") == 0
    assert value(samples, "bulkops_operations", resource_type="metrics", status="in_progress") == 0
    assert value(samples, "bulkops_items", resource_type="tickets", status="failed") == 0
    assert value(samples, "bulkops_collector_success", source="database") == 1
    assert value(samples, "bulkops_collector_success", source="redis") == 1


@pytest.mark.django_db
def test_it_counts_operations_and_items_by_status_and_error_code(client_for):
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(2)
    create(client_for(agent), [t.pk for t in tickets] + [999999], execution="sync")
    create(client_for(agent), [tickets[0].pk], execution="async")  # stays pending: no worker
    samples = scrape()
    assert value(samples, "bulkops_operations", resource_type="tickets", status="partial") == 1
    assert value(samples, "bulkops_operations", resource_type="tickets", status="pending") == 1
    assert value(samples, "bulkops_items", resource_type="tickets", status="succeeded") == 2
    assert value(samples, "bulkops_items", resource_type="tickets", status="failed") == 1
    assert value(samples, "bulkops_items", resource_type="tickets", status="pending") == 1
    assert value(samples, "bulkops_failed_items", error_code="NOT_FOUND") == 1


@pytest.mark.django_db
def test_chunk_and_operation_durations_are_cumulative_histograms(client_for, django_capture_on_commit_callbacks):
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(3)
    with django_capture_on_commit_callbacks(execute=True):
        create(client_for(agent), [t.pk for t in tickets], execution="sync")
    samples = scrape()
    assert value(samples, "bulkops_chunk_seconds_count") == 1
    assert value(samples, "bulkops_chunk_seconds_bucket", le="+Inf") == 1
    assert value(samples, "bulkops_chunk_seconds_bucket", le="10.0") == 1
    assert value(samples, "bulkops_operation_seconds_count") == 1
    assert 0 < value(samples, "bulkops_operation_seconds_sum") < 60
    buckets = [v for (name, _), v in samples.items() if name == "bulkops_chunk_seconds_bucket"]
    assert buckets == sorted(buckets)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_work_done_in_a_worker_process_shows_in_the_web_process_metrics(client_for):
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(5)
    op = create(client_for(agent), [t.pk for t in tickets])
    assert value(scrape(), "rq_jobs", queue="bulkops", status="queued") == 1
    run_worker_process()
    samples = scrape()
    assert value(samples, "rq_jobs", queue="bulkops", status="queued") == 0
    assert value(samples, "bulkops_operations", resource_type="tickets", status="completed") == 1
    assert value(samples, "bulkops_items", resource_type="tickets", status="succeeded") == 5
    assert value(samples, "bulkops_chunk_seconds_count") == 1
    assert value(samples, "bulkops_operation_seconds_count") == 1
    assert op["total_items"] == 5


@pytest.mark.django_db
@override_settings(BULKOPS_METRICS_TOKEN="s3cret")
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Token s3cret", "Bearer s3crét"])
def test_with_a_token_set_it_refuses_a_scrape_without_that_bearer_token(header):
    response = Client().get("/metrics", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"bulkops_operations" not in response.content


@pytest.mark.django_db
@override_settings(BULKOPS_METRICS_TOKEN="s3cret")
def test_with_a_token_set_it_serves_a_scrape_with_the_bearer_token():
    samples = scrape(Authorization="Bearer s3cret")
    assert value(samples, "bulkops_collector_success", source="database") == 1


@pytest.mark.django_db
def test_it_negotiates_openmetrics_for_a_scraper_that_asks_for_it():
    response = Client().get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.endswith(b"# EOF\n")


@pytest.mark.django_db
def test_it_only_answers_get():
    assert Client().post("/metrics").status_code == 405


@pytest.mark.django_db
def test_an_unreachable_redis_is_reported_instead_of_failing_the_scrape(monkeypatch):
    down = redis_client.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    monkeypatch.setattr(telemetry, "redis", lambda: down)
    samples = scrape()
    assert value(samples, "bulkops_collector_success", source="redis") == 0
    assert value(samples, "bulkops_collector_success", source="database") == 1


def test_an_observation_while_redis_is_down_is_lost_without_stopping_the_work(monkeypatch, caplog):
    down = redis_client.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    monkeypatch.setattr(telemetry, "redis", lambda: down)
    telemetry.observe_chunk(0.2)
    assert "bulkops_chunk_seconds observation lost" in caplog.text
