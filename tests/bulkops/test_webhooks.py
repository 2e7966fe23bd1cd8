"""Completion webhooks (SPEC §3.4): one signed POST when an operation finishes."""

import hashlib
import hmac
import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import django_rq
import pytest
from django.utils import timezone

from bulkops import webhooks
from bulkops.models import BulkOperation

from ..factories import AgentFactory, TicketFactory
from .helpers import work_off

TICKETS = "/api/v1/tickets/bulk-operations/"
RESOLVE = {"operation_type": "update_status", "operation_data": {"status": "resolved"}}


@pytest.fixture
def receiver():
    """An HTTP server on 127.0.0.1 that records every POST and answers the queued codes (then 200)."""
    received, codes = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(SimpleNamespace(headers=self.headers, body=body))
            code = codes.pop(0) if codes else 200
            self.send_response(code)
            if 300 <= code < 400:
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}/hook", received=received, codes=codes)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def allow_private(settings):
    settings.BULKOPS_WEBHOOK_ALLOW_PRIVATE = True


def default_queue():
    return django_rq.get_queue("default")


def finished_operation(client, url):
    ticket = TicketFactory()
    response = client.post(TICKETS, {"ticket_ids": [ticket.pk], **RESOLVE, "callback_url": url}, format="json")
    assert response.status_code == 202, response.json()
    work_off()
    return response.json()["operation_id"]


def expected_signature(client, body):
    secret = client.get("/api/v1/bulk-operations/webhook-secret/").json()["secret"]
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_private")
def test_the_final_status_is_posted_once_with_a_valid_signature(client_for, receiver):
    client = client_for(AgentFactory())
    op_id = finished_operation(client, receiver.url)
    assert receiver.received == []  # delivered by a job, not by the worker that finished it
    work_off("default")
    work_off("default")
    assert len(receiver.received) == 1
    request = receiver.received[0]
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Bulkops-Signature"] == expected_signature(client, request.body)
    body = json.loads(request.body)
    assert (body["operation_id"], body["status"], body["successful_items"]) == (op_id, "completed", 1)
    assert "webhook" not in body
    status = client.get(f"/api/v1/bulk-operations/{op_id}/").json()["webhook"]
    assert status["status"] == "delivered"
    assert [(a["status_code"], a["error"]) for a in status["attempts"]] == [(200, "")]
    assert datetime.fromisoformat(status["delivered_at"]) <= timezone.now()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_private")
def test_a_failed_delivery_is_retried_after_a_backoff(client_for, receiver):
    client = client_for(AgentFactory())
    receiver.codes.append(500)
    op_id = finished_operation(client, receiver.url)
    work_off("default")
    webhook = BulkOperation.objects.get(pk=op_id).webhook
    assert webhook["status"] == "retrying"
    assert [(a["status_code"], a["error"]) for a in webhook["attempts"]] == [(500, "HTTP 500")]
    scheduled = default_queue().scheduled_job_registry
    job_id = f"bulkop-webhook-{op_id}"
    assert scheduled.get_job_ids() == [job_id]
    delay = (scheduled.get_scheduled_time(job_id) - timezone.now()).total_seconds()
    assert webhooks.RETRY_INTERVALS[0] - 2 < delay <= webhooks.RETRY_INTERVALS[0]
    scheduled.requeue(job_id)  # the scheduler's job, done now
    work_off("default")
    assert len(receiver.received) == 2
    assert receiver.received[0].body == receiver.received[1].body
    webhook = BulkOperation.objects.get(pk=op_id).webhook
    assert webhook["status"] == "delivered"
    assert [a["status_code"] for a in webhook["attempts"]] == [500, 200]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_private")
def test_delivery_gives_up_after_the_last_retry(client_for, receiver, monkeypatch):
    monkeypatch.setattr(webhooks, "RETRY_INTERVALS", [0, 0])
    receiver.codes.extend([503, 503, 302])
    op_id = finished_operation(client_for(AgentFactory()), receiver.url)
    work_off("default")
    webhook = BulkOperation.objects.get(pk=op_id).webhook
    assert webhook["status"] == "failed"
    assert [(a["status_code"], a["error"]) for a in webhook["attempts"]] == [
        (503, "HTTP 503"),
        (503, "HTTP 503"),
        (302, "HTTP 302"),  # a redirect is not followed
    ]
    assert len(receiver.received) == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_private")
def test_an_unreachable_receiver_is_recorded(client_for, receiver, monkeypatch):
    monkeypatch.setattr(webhooks, "RETRY_INTERVALS", [0])
    op_id = finished_operation(client_for(AgentFactory()), "http://127.0.0.1:9/closed")
    work_off("default")
    webhook = BulkOperation.objects.get(pk=op_id).webhook
    assert webhook["status"] == "failed"
    assert [a["status_code"] for a in webhook["attempts"]] == [None, None]
    assert all(a["error"] for a in webhook["attempts"])


@pytest.mark.django_db(transaction=True)
def test_an_operation_without_callback_url_queues_no_delivery(client_for):
    client = client_for(AgentFactory())
    response = client.post(TICKETS, {"ticket_ids": [TicketFactory().pk], **RESOLVE}, format="json")
    work_off()
    assert default_queue().count == 0
    assert BulkOperation.objects.get(pk=response.json()["operation_id"]).webhook == {}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_private")
def test_the_finish_hook_queues_one_delivery_however_often_it_runs(client_for, receiver):
    op_id = finished_operation(client_for(AgentFactory()), receiver.url)
    webhooks.on_operation_finished(BulkOperation.objects.get(pk=op_id))
    assert default_queue().count == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "ftp://example.com/hook",
        "http://example.com:99999/hook",
    ],
)
def test_a_private_or_non_http_callback_url_is_refused(agent, client_for, url):
    body = {"ticket_ids": [1], **RESOLVE, "callback_url": url}
    response = client_for(agent).post(TICKETS, body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["message"].startswith("callback_url")
    assert BulkOperation.objects.count() == 0


@pytest.mark.django_db
def test_a_private_callback_url_is_accepted_when_allowed(agent, client_for, allow_private):
    body = {"ticket_ids": [1], **RESOLVE, "callback_url": "http://127.0.0.1:8000/hook"}
    assert client_for(agent).post(TICKETS, body, format="json").status_code == 202


def test_a_public_address_passes_the_check(monkeypatch):
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("93.184.215.14", 443))])
    webhooks.check_url("https://hooks.example.com/bulk")


def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch):
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("10.0.0.7", 443))])
    with pytest.raises(webhooks.UnsafeURL, match="hooks.example.com"):
        webhooks.check_url("https://hooks.example.com/bulk")


@pytest.mark.django_db(transaction=True)
def test_delivery_checks_the_address_again(client_for, receiver, settings, monkeypatch):
    """A name may resolve elsewhere by delivery time: the check runs before every attempt."""
    monkeypatch.setattr(webhooks, "RETRY_INTERVALS", [0])
    settings.BULKOPS_WEBHOOK_ALLOW_PRIVATE = True
    op_id = finished_operation(client_for(AgentFactory()), receiver.url)
    settings.BULKOPS_WEBHOOK_ALLOW_PRIVATE = False
    work_off("default")
    assert receiver.received == []
    webhook = BulkOperation.objects.get(pk=op_id).webhook
    assert webhook["status"] == "failed"
    assert "private" in webhook["attempts"][0]["error"]


@pytest.mark.django_db
def test_the_webhook_secret_is_made_once_per_user(client_for):
    first, other = client_for(AgentFactory()), client_for(AgentFactory())
    secret = first.get("/api/v1/bulk-operations/webhook-secret/").json()
    assert secret["signature_header"] == "X-Bulkops-Signature"
    assert len(secret["secret"]) == 64
    assert first.get("/api/v1/bulk-operations/webhook-secret/").json() == secret
    assert other.get("/api/v1/bulk-operations/webhook-secret/").json()["secret"] != secret["secret"]
