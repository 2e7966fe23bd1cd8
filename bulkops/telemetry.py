"""Prometheus metrics, served at /metrics (see docs/observability.md).

The work happens in other processes than the one that answers the scrape (rq work-horses,
forked per job and gone after it, often on other machines), so nothing here is kept in
process memory:
- operations and items by status, failed items by error code: counted in the database at
  scrape time, so they are exact whichever process did the work;
- queue depth and workers: django-rq's collector (`rq_jobs`, `rq_workers`), read from
  Redis at scrape time;
- chunk and operation durations: histograms whose buckets are counted in Redis by the
  process that observes them. prometheus-client's multiprocess mode would merge only the
  processes of one machine, and leaves one file per forked work-horse, all read at every
  scrape; one Redis hash per histogram is shared by every process of every machine.
"""

import hmac
import logging
from dataclasses import dataclass
from functools import cache

import django_rq
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, F, Sum
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from django_rq.contrib.prometheus import RQCollector
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.utils import floatToGoString
from redis.exceptions import RedisError

from . import conf, registry
from .models import BulkOperation, BulkOperationItem, ItemStatus, Status

log = logging.getLogger("bulkops")
# A scrape must not hang on a slow database: it reports the collector as failed instead.
SCRAPE_STATEMENT_TIMEOUT_MS = 5_000


@cache
def redis():
    """One client per process: django_rq.get_connection makes a new pool (a new TCP
    connection) at every call. redis-py resets the pool's connections in a forked child."""
    return django_rq.get_connection("bulkops")


@dataclass(frozen=True)
class SharedHistogram:
    """A histogram whose buckets live in one Redis hash: `le` bound ⇒ count, and `sum`."""

    name: str
    documentation: str
    buckets: tuple

    @property
    def key(self):
        return f"bulkops:telemetry:{self.name}"

    def bounds(self):
        return [floatToGoString(b) for b in self.buckets] + ["+Inf"]

    def observe(self, seconds):
        """Count one observation; a Redis outage loses it rather than stopping the work."""
        bound = next((floatToGoString(b) for b in self.buckets if seconds <= b), "+Inf")
        try:
            pipe = redis().pipeline(transaction=False)
            pipe.hincrby(self.key, bound, 1)
            pipe.hincrbyfloat(self.key, "sum", seconds)
            pipe.execute()
        except RedisError:
            log.warning("%s observation lost: Redis unavailable", self.name, exc_info=True)

    def collect(self, conn):
        stored = {k.decode(): v for k, v in conn.hgetall(self.key).items()}
        cumulative, buckets = 0, []
        for bound in self.bounds():
            cumulative += int(stored.get(bound, 0))
            buckets.append((bound, cumulative))
        return HistogramMetricFamily(
            self.name, self.documentation, buckets=buckets, sum_value=float(stored.get("sum", 0))
        )


CHUNK_SECONDS = SharedHistogram(
    "bulkops_chunk_seconds",
    "Time to process one chunk (claim, lock, apply, write, record), committed",
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OPERATION_SECONDS = SharedHistogram(
    "bulkops_operation_seconds",
    "Time from start to finish of an operation",
    (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
)
HISTOGRAMS = (CHUNK_SECONDS, OPERATION_SECONDS)


def observe_chunk(seconds, **signal):
    """`chunk_committed`: the chunk's duration."""
    CHUNK_SECONDS.observe(seconds)


def operation_finished(op, **signal):
    """`operation_finished`: its duration, and one log line with its outcome."""
    if op.duration_seconds is not None:  # None: cancelled before it started
        OPERATION_SECONDS.observe(op.duration_seconds)
    log.info(
        "operation finished",
        extra={
            "operation_id": str(op.pk),
            "user_id": op.user_id,
            "status": op.status,
            "total_items": op.total_items,
            "successful_items": op.successful_items,
            "failed_items": op.failed_items,
            "skipped_items": op.skipped_items,
            "duration_seconds": op.duration_seconds,
        },
    )


# --- what a scrape reads ---------------------------------------------------------------------


def read_database():
    """Operations and items as the database has them right now (a gauge each)."""
    operations = GaugeMetricFamily(
        "bulkops_operations", "Bulk operations stored, by status", labels=["resource_type", "status"]
    )
    items = GaugeMetricFamily(
        "bulkops_items", "Items of stored bulk operations, by status", labels=["resource_type", "status"]
    )
    failed = GaugeMetricFamily(
        "bulkops_failed_items", "Failed items of stored bulk operations, by error code", labels=["error_code"]
    )
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = %s", [SCRAPE_STATEMENT_TIMEOUT_MS])
        by_status, item_totals = operation_counts()
        failed_by_code = failed_item_counts()
    for (resource_type, status), count in by_status.items():
        operations.add_metric([resource_type, status], count)
    for (resource_type, status), count in item_totals.items():
        items.add_metric([resource_type, status], count)
    for code, count in failed_by_code:
        failed.add_metric([code], count)
    return [operations, items, failed]


def operation_counts():
    """({(resource, status): operations}, {(resource, item status): items}), the items from
    the operations' counters: no scan of the (large) item table. Every known resource and
    status is present, at 0 when there is none, so that a series never just disappears."""
    operations = {(r, s): 0 for r in registry.resources() for s in Status.values}
    items = {(r, s): 0 for r in registry.resources() for s in ItemStatus.values}
    rows = (
        BulkOperation.objects.values("resource_type", "status")
        .annotate(
            operations=Count("pk"),
            succeeded=Sum("successful_items"),
            failed=Sum("failed_items"),
            skipped=Sum("skipped_items"),
            pending=Sum(F("total_items") - F("processed_items") - F("skipped_items")),
        )
        .order_by("resource_type", "status")
    )
    for row in rows:
        operations[row["resource_type"], row["status"]] = row["operations"]
        for status in ItemStatus.values:
            key = (row["resource_type"], status)
            items[key] = items.get(key, 0) + (row[status] or 0)
    return operations, items


def failed_item_counts():
    return list(
        BulkOperationItem.objects.filter(status=ItemStatus.FAILED)
        .values_list("error_code")
        .annotate(n=Count("pk"))
        .order_by("error_code")
    )


def read_redis():
    """The rq queues and workers (django-rq's collector: `rq_jobs`, `rq_workers`, …) and the
    shared histograms."""
    return [*RQCollector().collect(), *(histogram.collect(redis()) for histogram in HISTOGRAMS)]


class BulkopsCollector:
    """Everything, read at scrape time; a source that cannot be read is reported as such
    (`bulkops_collector_success` 0) instead of failing the whole scrape."""

    sources = (("database", DatabaseError, read_database), ("redis", RedisError, read_redis))

    def collect(self):
        success = GaugeMetricFamily(
            "bulkops_collector_success", "1 if the scrape could read this source, else 0", labels=["source"]
        )
        for source, error, read in self.sources:
            try:
                families = read()
            except error:
                log.warning("metrics: %s unavailable", source, exc_info=True)
                success.add_metric([source], 0)
            else:
                success.add_metric([source], 1)
                yield from families
        yield success


@cache
def collector_registry():
    metrics = CollectorRegistry()
    metrics.register(BulkopsCollector())
    return metrics


@require_GET
def metrics_view(request):
    """Prometheus text format. Open, unless BULKOPS_METRICS_TOKEN asks for a bearer token."""
    token = conf.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {token}".encode()):
            response = HttpResponse("A bearer token is required.\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))  # OpenMetrics if asked for
    return HttpResponse(encoder(collector_registry()), content_type=content_type)
