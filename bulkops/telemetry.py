"""Prometheus instruments (served at /metrics) and the finish hooks that feed them."""

from prometheus_client import Counter, Histogram

OPERATIONS = Counter("bulkops_operations_total", "Finished bulk operations", ["resource_type", "status"])
ITEMS = Counter("bulkops_items_total", "Processed bulk operation items", ["resource_type", "status"])
CHUNK_SECONDS = Histogram(
    "bulkops_chunk_seconds", "Time to process one chunk", buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
)
OPERATION_SECONDS = Histogram(
    "bulkops_operation_seconds",
    "Time from start to finish of an operation",
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)


def observe_chunk(seconds):
    CHUNK_SECONDS.observe(seconds)


def operation_finished(op):
    OPERATIONS.labels(op.resource_type, op.status).inc()
    ITEMS.labels(op.resource_type, "succeeded").inc(op.successful_items)
    ITEMS.labels(op.resource_type, "failed").inc(op.failed_items)
    ITEMS.labels(op.resource_type, "skipped").inc(op.skipped_items)
    if op.duration_seconds is not None:
        OPERATION_SECONDS.observe(op.duration_seconds)
