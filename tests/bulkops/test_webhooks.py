"""Completion webhooks (SPEC §3.4): one signed POST when an operation finishes."""

import hashlib
import hmac
import json
import ssl
import threading
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import django_rq
import pytest
import trustme
from django.utils import timezone

from bulkops import webhooks
from bulkops.models import BulkOperation

from ..factories import AgentFactory, ApproverFactory, TicketFactory
from .helpers import work_off

TICKETS = "/api/v1/tickets/bulk-operations/"
RESOLVE = {"operation_type": "update_status", "operation_data": {"status": "resolved"}}


@contextmanager
def serving(tls=None):
    """An HTTP(S) server on 127.0.0.1 that records every POST and answers the queued codes (then 200)."""
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
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_port
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/hook", port=port, received=received, codes=codes)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def receiver():
    with serving() as server:
        yield server


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


# Forms of loopback and private addresses that a check of the IPv6 address alone would pass,
# and addresses that are no single public host at all.
UNSAFE_ADDRESSES = [
    "http://[::127.0.0.1]/hook",  # IPv4-compatible IPv6
    "http://[::10.0.0.1]/hook",
    "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
    "http://[2002:c0a8:1::]/hook",  # 6to4 of 192.168.0.1
    "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
    "http://192.0.0.8/hook",  # IETF protocol assignments
    "http://224.0.0.1/hook",  # multicast
    "http://239.255.255.250:1900/hook",
    "http://[ff0e::1]/hook",
    "http://240.0.0.1/hook",  # reserved
    "http://255.255.255.255/hook",
    "http://93.184.215.14:0/hook",  # port 0
    "https://hooks.example.com:0/hook",
]


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
        *UNSAFE_ADDRESSES,
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


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",
        "https://93.184.215.14:8443/hook",
        "http://[2606:2800:220:1:248:1893:25c8:1946]/hook",
        "http://[64:ff9b::5db8:d70e]/hook",  # NAT64 of a public address
    ],
)
def test_a_public_callback_url_is_accepted(agent, client_for, url):
    body = {"ticket_ids": [1], **RESOLVE, "callback_url": url}
    response = client_for(agent).post(TICKETS, body, format="json")
    assert response.status_code == 202, response.json()
    assert BulkOperation.objects.get().callback_url == url


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


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("address", ["[::127.0.0.1]", "[2002:7f00:1::]", "[64:ff9b::7f00:1]", "192.0.0.8", "224.0.0.1"])
def test_delivery_refuses_each_unsafe_address(client_for, settings, monkeypatch, address):
    monkeypatch.setattr(webhooks, "RETRY_INTERVALS", [0])
    settings.BULKOPS_WEBHOOK_ALLOW_PRIVATE = True
    op_id = finished_operation(client_for(AgentFactory()), f"http://{address}:8000/hook")
    settings.BULKOPS_WEBHOOK_ALLOW_PRIVATE = False
    work_off("default")
    webhook = BulkOperation.objects.get(pk=op_id).webhook
    assert webhook["status"] == "failed"
    assert [a["status_code"] for a in webhook["attempts"]] == [None, None]
    assert all("not a public address" in a["error"] for a in webhook["attempts"])


# A public address: whether anything answers there does not matter, only that the receiver does not.
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


class Resolver:
    """A DNS stand-in for hooks.example.test: the first lookup answers `first`, every later
    one `later` — what a rebinding name server does. Addresses are resolved for real."""

    NAME = "hooks.example.test"

    def __init__(self, real, first, later):
        self.real, self.answers, self.lookups = real, [first], 0
        self.later = later

    def __call__(self, host, port, *args, **kwargs):
        if host != self.NAME:
            return self.real(host, port, *args, **kwargs)
        self.lookups += 1
        address = self.answers.pop() if self.answers else self.later
        return self.real(address, port, *args, **kwargs)


@pytest.mark.django_db(transaction=True)
def test_a_name_that_turns_to_loopback_after_the_check_is_not_reached(client_for, receiver, monkeypatch):
    """DNS rebinding: the check sees a public address, a second lookup would get 127.0.0.1.
    The connection goes to the checked address (which nothing here answers), never to the
    receiver; the next attempt looks the name up once more, and refuses what it gets."""
    monkeypatch.setattr(webhooks, "RETRY_INTERVALS", [0])
    monkeypatch.setattr(webhooks, "TIMEOUT", 0.5)
    real = webhooks.socket.getaddrinfo
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", Resolver(real, PUBLIC_V6, PUBLIC_V6))
    op_id = finished_operation(client_for(AgentFactory()), f"http://{Resolver.NAME}:{receiver.port}/hook")
    resolver = Resolver(real, PUBLIC_V6, "127.0.0.1")
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", resolver)

    work_off("default")

    assert receiver.received == []
    assert resolver.lookups == 2  # one per attempt
    attempts = BulkOperation.objects.get(pk=op_id).webhook["attempts"]
    assert len(attempts) == 2 and "not a public address" in attempts[1]["error"]


@pytest.mark.django_db(transaction=True)
def test_a_delivery_reaches_the_checked_address_as_the_named_host(client_for, receiver, settings, monkeypatch):
    monkeypatch.setattr(webhooks, "RETRY_INTERVALS", [0])
    port = receiver.port
    url = f"http://{Resolver.NAME}:{port}/hook?from=bulkops"
    settings.BULKOPS_WEBHOOK_ALLOW_PRIVATE = True
    real = webhooks.socket.getaddrinfo
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", Resolver(real, "127.0.0.1", "127.0.0.1"))
    op_id = finished_operation(client_for(AgentFactory()), url)
    # At delivery the name answers 127.0.0.1 once, then an address nothing listens on.
    resolver = Resolver(real, "127.0.0.1", "127.0.0.2")
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", resolver)

    work_off("default")

    assert resolver.lookups == 1
    assert len(receiver.received) == 1
    assert receiver.received[0].headers["Host"] == f"{Resolver.NAME}:{port}"
    assert BulkOperation.objects.get(pk=op_id).webhook["status"] == "delivered"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("certified", "delivered"), [(Resolver.NAME, True), ("other.example.test", False)])
def test_an_https_delivery_to_the_checked_address_verifies_the_certificate_for_the_name(
    client_for, settings, monkeypatch, tmp_path, certified, delivered
):
    """TLS is checked against the name in the URL (SNI and certificate), not the address."""
    monkeypatch.setattr(webhooks, "RETRY_INTERVALS", [0])
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # what the default context trusts
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(certified).configure_cert(tls)
    settings.BULKOPS_WEBHOOK_ALLOW_PRIVATE = True
    real = webhooks.socket.getaddrinfo
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", Resolver(real, "127.0.0.1", "127.0.0.1"))
    with serving(tls) as server:
        op_id = finished_operation(client_for(AgentFactory()), f"https://{Resolver.NAME}:{server.port}/hook")
        work_off("default")
        webhook = BulkOperation.objects.get(pk=op_id).webhook
        if delivered:
            assert webhook["status"] == "delivered"
            assert server.received[0].headers["Host"] == f"{Resolver.NAME}:{server.port}"
        else:
            assert webhook["status"] == "failed"
            assert server.received == []
            assert all("certificate" in a["error"].lower() for a in webhook["attempts"])


def test_the_checked_address_is_what_the_name_resolved_to_at_the_check(monkeypatch):
    resolver = Resolver(webhooks.socket.getaddrinfo, "93.184.215.14", "127.0.0.1")
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", resolver)
    target = webhooks.check_url(f"https://{Resolver.NAME}/bulk?x=1")
    assert (target.host, target.port, target.addresses, target.path) == (
        Resolver.NAME,
        443,
        ("93.184.215.14",),
        "/bulk?x=1",
    )
    assert resolver.lookups == 1


@pytest.mark.django_db
def test_the_webhook_secret_is_made_once_per_user(client_for):
    first, other = client_for(AgentFactory()), client_for(AgentFactory())
    secret = first.get("/api/v1/bulk-operations/webhook-secret/").json()
    assert secret["signature_header"] == "X-Bulkops-Signature"
    assert len(secret["secret"]) == 64
    assert first.get("/api/v1/bulk-operations/webhook-secret/").json() == secret
    assert other.get("/api/v1/bulk-operations/webhook-secret/").json()["secret"] != secret["secret"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_private")
def test_an_approval_posts_nothing_and_a_rejection_posts_the_final_status_once(client_for, receiver):
    """Webhooks say "finished" (SPEC §13): awaiting approval or approved, nothing; rejected
    (cancelled), the final status with every item skipped."""
    creator = AgentFactory(perms=["tickets.change_ticket", "tickets.delete_ticket"])
    client = client_for(creator)
    body = {"ticket_ids": [TicketFactory().pk], "operation_type": "delete", "callback_url": receiver.url}
    rejected, approved = (client.post(TICKETS, body, format="json").json()["operation_id"] for _ in range(2))
    approver = client_for(ApproverFactory())
    assert approver.post(f"/api/v1/bulk-operations/{approved}/approve/").status_code == 202
    assert (
        approver.post(f"/api/v1/bulk-operations/{rejected}/reject/", {"reason": "No"}, format="json").status_code == 200
    )
    work_off("default")
    posted = [json.loads(request.body) for request in receiver.received]
    assert [(p["operation_id"], p["status"], p["skipped_items"], p["rejection_reason"]) for p in posted] == [
        (rejected, "cancelled", 1, "No")
    ]
