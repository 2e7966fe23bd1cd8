"""Completion webhooks: one signed POST to an operation's `callback_url` when it finishes.

The body is the final status representation; `X-Bulkops-Signature: sha256=<hex>` is the
HMAC-SHA256 of the raw body with the user's webhook secret. An rq job on the `default`
queue delivers it, retried with backoff; every attempt is recorded in `operation.webhook`,
which the status response shows.

Callback URLs must not reach the service's own network (SSRF): only globally routable
unicast addresses are accepted (IPv6 forms that embed an IPv4 address are judged by that
address), unless BULKOPS_WEBHOOK_ALLOW_PRIVATE is on. The name is resolved and checked when
the operation is created and again at each attempt, and each attempt connects to exactly the
addresses it checked — a second lookup could answer differently (DNS rebinding). The name
stays the Host header and the TLS server name, so certificates are verified for it.
"""

import hashlib
import hmac
import http.client
import ipaddress
import logging
import secrets
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import django_rq
from django.db import transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rq import Retry, get_current_job

from . import conf
from .models import BulkOperation, WebhookSecret
from .representation import OperationSerializer

log = logging.getLogger("bulkops")
QUEUE = "default"
SIGNATURE_HEADER = "X-Bulkops-Signature"
# Seconds before each retry: 5 retries over about 45 minutes.
RETRY_INTERVALS = [10, 30, 120, 600, 1800]
TIMEOUT = 10
MAX_ATTEMPTS_SHOWN = 20


class UnsafeURL(ValueError):
    """A callback URL that is not http(s), does not resolve, or points at a non-public address."""


class DeliveryFailed(Exception):
    """Raised by the job so that rq retries it."""


# IPv6 prefixes whose last 32 bits are an IPv4 address that the packets end up at:
# IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96). 6to4 and IPv4-mapped are read by ipaddress.
EMBEDDING_PREFIXES = (ipaddress.ip_network("::/96"), ipaddress.ip_network("64:ff9b::/96"))
# Not globally reachable (IANA), though Python's is_global says otherwise: 192.0.0.8 and friends.
NOT_GLOBAL = (ipaddress.ip_network("192.0.0.0/24"),)


@dataclass(frozen=True)
class Target:
    """A checked callback URL: where to connect (`addresses`, in order) and as whom (`host`)."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple


def embedded_ipv4(address):
    if address.version == 4:
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if any(address in prefix for prefix in EMBEDDING_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address):
    """A globally routable unicast address (an IPv4 address embedded in IPv6 judged itself)."""
    address = embedded_ipv4(address) or address
    return (
        address.is_global
        and not (address.is_multicast or address.is_reserved)
        and not any(address in network for network in NOT_GLOBAL)
    )


def check_url(url):
    """Resolve `url`'s host once and check every address it gave ⇒ the Target to connect to.
    Refuses anything but http(s) to a public address and port; raises UnsafeURL naming why."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UnsafeURL("callback_url must be an http or https URL.")
    try:
        port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    if not port:
        raise UnsafeURL("callback_url has an invalid port.")
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeURL(f"callback_url: cannot resolve {parts.hostname}.") from None
    addresses = tuple(dict.fromkeys(ipaddress.ip_address(sockaddr[0]) for *_, sockaddr in infos))
    if not conf.WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            if not is_public(address):
                raise UnsafeURL(
                    f"callback_url: {parts.hostname} ({address}) is not a public address: private, loopback, "
                    "link-local, multicast and reserved addresses are refused."
                )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path, tuple(str(address) for address in addresses))


def secret_for(user):
    """The user's signing key, made on first use."""
    secret, _ = WebhookSecret.objects.get_or_create(user=user, defaults={"secret": secrets.token_hex(32)})
    return secret.secret


def signature(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def on_operation_finished(op, **signal):
    """`operation_finished`: queue the delivery, once, if the operation asked for one."""
    if not op.callback_url:
        return
    # Claim first: a second call (a re-run finalize) finds `webhook` already set and stops.
    if not BulkOperation.objects.filter(pk=op.pk, webhook={}).update(webhook={"status": "pending", "attempts": []}):
        return
    try:
        django_rq.get_queue(QUEUE).enqueue(
            deliver,
            str(op.pk),
            job_id=f"bulkop-webhook-{op.pk}",
            retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
            failure_ttl=7 * 86400,
        )
    except Exception as exc:  # noqa: BLE001 - Redis down: say so on the operation, never break the finish
        log.warning("webhook not queued", extra={"operation_id": str(op.pk)}, exc_info=True)
        BulkOperation.objects.filter(pk=op.pk).update(webhook={"status": "failed", "error": f"not queued: {exc}"})


def render(op):
    """The final status representation, as the status endpoint shows it (without `webhook`)."""
    data = OperationSerializer(op).data
    data.pop("webhook", None)
    return JSONRenderer().render(data)


def connect(target, timeout):
    """A TCP connection to the first of the checked addresses that answers: no lookup here."""
    error = OSError(f"no address for {target.host}")
    for address in target.addresses:
        try:
            return socket.create_connection((address, target.port), timeout)
        except OSError as exc:
            error = exc
    raise error


class CheckedHTTPConnection(http.client.HTTPConnection):
    """HTTP to the Target's checked addresses, with the name in the Host header."""

    def __init__(self, target, timeout):
        super().__init__(target.host, target.port, timeout=timeout)
        self.target = target

    def connect(self):
        self.sock = connect(self.target, self.timeout)


class CheckedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the Target's checked addresses; SNI and the certificate check use the name."""

    def __init__(self, target, timeout):
        self.tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self.tls)
        self.target = target

    def connect(self):
        self.sock = self.tls.wrap_socket(connect(self.target, self.timeout), server_hostname=self.target.host)


def post(target, body, headers):
    """POST to a checked Target and return the HTTP status code (a redirect is not followed:
    it could lead anywhere, the internal network included). Raises OSError or HTTPException
    when there is no answer."""
    connection_class = CheckedHTTPSConnection if target.scheme == "https" else CheckedHTTPConnection
    connection = connection_class(target, timeout=TIMEOUT)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def deliver(op_id):
    """The rq job: one attempt; raising makes rq retry it after the next interval."""
    op = BulkOperation.objects.select_related("user").filter(pk=op_id).first()
    if op is None or op.webhook.get("status") == "delivered":
        return
    body = render(op)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "bulkops-webhook/1",
        "X-Bulkops-Operation": str(op.pk),
        SIGNATURE_HEADER: signature(secret_for(op.user), body),
    }
    attempt = {"at": timezone.now().isoformat(), "status_code": None, "error": ""}
    try:
        attempt["status_code"] = post(check_url(op.callback_url), body, headers)
        if not 200 <= attempt["status_code"] < 300:
            attempt["error"] = f"HTTP {attempt['status_code']}"
    except (UnsafeURL, OSError, http.client.HTTPException) as exc:
        attempt["error"] = str(exc) or type(exc).__name__
    record(op.pk, attempt)
    if attempt["error"]:
        raise DeliveryFailed(f"webhook for operation {op.pk}: {attempt['error']}")


def record(op_id, attempt):
    """Add the attempt to `operation.webhook` and say where delivery stands."""
    job = get_current_job()
    if not attempt["error"]:
        state = "delivered"
    elif job is not None and job.retries_left:
        state = "retrying"
    else:
        state = "failed"
    with transaction.atomic():
        op = BulkOperation.objects.select_for_update().only("pk", "webhook").get(pk=op_id)
        attempts = [*op.webhook.get("attempts", []), attempt][-MAX_ATTEMPTS_SHOWN:]
        op.webhook = {"status": state, "attempts": attempts}
        if state == "delivered":
            op.webhook["delivered_at"] = attempt["at"]
        op.save(update_fields=["webhook"])
    log.info(
        "webhook attempt",
        extra={"operation_id": str(op_id), "webhook_state": state, "status_code": attempt["status_code"]},
    )
