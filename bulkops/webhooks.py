"""Completion webhooks: one signed POST to an operation's `callback_url` when it finishes.

The body is the final status representation; `X-Bulkops-Signature: sha256=<hex>` is the
HMAC-SHA256 of the raw body with the user's webhook secret. An rq job on the `default`
queue delivers it, retried with backoff; every attempt is recorded in `operation.webhook`,
which the status response shows.

Callback URLs must not reach the service's own network (SSRF): private, loopback,
link-local and other non-public addresses are refused when the operation is created and
again before each attempt (the name may resolve elsewhere by then), unless
BULKOPS_WEBHOOK_ALLOW_PRIVATE is on.
"""

import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rq import Retry, get_current_job

from .models import BulkOperation, WebhookSecret

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


def check_url(url):
    """Refuse anything but http(s) to a public address; raises UnsafeURL naming the problem."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURL("callback_url has an invalid port.") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UnsafeURL("callback_url must be an http or https URL.")
    if settings.BULKOPS_WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise UnsafeURL(f"callback_url: cannot resolve {parts.hostname}.") from None
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global:
            raise UnsafeURL(f"callback_url: {parts.hostname} is a private, loopback or link-local address.")


def secret_for(user):
    """The user's signing key, made on first use."""
    secret, _ = WebhookSecret.objects.get_or_create(user=user, defaults={"secret": secrets.token_hex(32)})
    return secret.secret


def signature(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def on_operation_finished(op):
    """The finish hook: queue the delivery, once, if the operation asked for one."""
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
    from .api.serializers import OperationSerializer  # late: the API imports this module

    data = OperationSerializer(op).data
    data.pop("webhook", None)
    return JSONRenderer().render(data)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could lead anywhere, the internal network included: it counts as a failure."""

    def redirect_request(self, *args, **kwargs):
        return None


def post(url, body, headers):
    """POST and return the HTTP status code; raises OSError when there is no answer."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


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
        check_url(op.callback_url)
        attempt["status_code"] = post(op.callback_url, body, headers)
        if not 200 <= attempt["status_code"] < 300:
            attempt["error"] = f"HTTP {attempt['status_code']}"
    except (UnsafeURL, OSError) as exc:
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
