"""The heterogeneous batch (SPEC §5.4) and the batch get (§5.5).

A batch is a bulk operation like any other (resource_type "mixed", operation_type "batch"):
one item per requested operation, in the order given, run by the engine one item per
chunk, so each runs in its own transaction with its rows locked — or, atomic, all in one,
stopping at the first failure: later entries may build on earlier ones, so they cannot be
checked alone, and are reported ROLLED_BACK like the entries before it.
What an item does belongs to its resource (bulkops.resources.Resource: `batch_methods`,
`create`, `update`, `delete`), registered by its domain app on the same serializers and
services as its single endpoints. `bulkops` never imports a domain app.
"""

from contextlib import contextmanager
from dataclasses import dataclass

from django.db import DatabaseError, transaction
from django.utils import timezone
from rest_framework import serializers

from .. import errors, registry, services
from ..counters import counters
from ..models import Execution, ItemStatus, Mode
from ..operations import OperationType
from ..registry import register, register_resource
from ..resources import Resource

MAX_OPERATIONS = 50
MAX_GET_IDS = 100
NEW = "new"  # the id part of a POST item's target: "tickets:new"
METHOD_STATUS = {"POST": 201, "PATCH": 200, "DELETE": 204}
# The `type` of a result's error: what kind of refusal, by its HTTP status.
ERROR_TYPES = {400: "validation_error", 403: "permission_error", 404: "not_found_error", 409: "conflict_error"}


def resource_of(resource_type):
    """The resource a batch entry names; only those with batch methods are offered."""
    return registry.resource(resource_type)


def error_of(code, message):
    status = errors.HTTP_STATUS.get(code, 500)
    return {"code": code, "message": message, "type": ERROR_TYPES.get(status, "server_error")}


# --- the batch operation -----------------------------------------------------------------

# The record of a POST, or of a PATCH / DELETE whose target the user cannot see.
NOTHING = object()


@dataclass
class Done:
    """One applied item: the HTTP status and body its single endpoint would have answered."""

    status: int
    data: dict | None


@contextmanager
def refused_by_database():
    """A write the database refuses (a constraint, a trigger) fails this item only, with the
    engine's codes; transient errors go on to the engine, which retries the transaction."""
    try:
        with transaction.atomic():
            yield
    except DatabaseError as exc:
        if errors.sqlstate(exc) in errors.TRANSIENT:
            raise
        raise errors.from_database(exc) from exc


@register_resource
class Mixed(Resource):
    """The records of a batch: any resource's, each target "tickets:12"."""

    name, label = "mixed", "Record"
    id_field = serializers.CharField
    revert_type = None  # a batch is not reverted


@register
class Batch(OperationType):
    """Item payload: {"method", "resource_type", "id"?, "data"?, "ref"?}; target "tickets:12"."""

    resource, name, label = Mixed, "batch", "Batch"
    internal = True  # started by POST /api/v1/batch/ only

    def parse_id(self, target_id):
        resource_type, _, raw = target_id.partition(":")
        return resource_type, None if raw == NEW else resource_of(resource_type).parse_id(raw)

    def lock(self, user, keys):
        records = dict.fromkeys(keys, NOTHING)
        for resource_type in sorted({resource_type for resource_type, _ in keys}):
            ids = [pk for other, pk in keys if other == resource_type and pk is not None]
            if ids:
                locked = resource_of(resource_type).lock(user, ids)
                records.update({(resource_type, pk): record for pk, record in locked.items()})
        return records

    def apply(self, record, ctx, step):
        resource, method, data = resource_of(step["resource_type"]), step["method"], step.get("data") or {}
        if method != "POST" and record is NOTHING:
            raise errors.NotFound(f"{resource.label} {step['id']} not found")
        # The resource writes at once (a create cannot wait for `save`), in a savepoint of its own.
        with refused_by_database():
            if method == "POST":
                body = resource.create(ctx, data)
            elif method == "PATCH":
                body = resource.update(record, ctx, data)
            else:
                body = resource.delete(record, ctx)
        return Done(METHOD_STATUS[method], body)

    def save(self, changes):
        """Nothing left to write: `apply` wrote each item."""

    def describe(self, done):
        return None, {"status": done.status, "data": done.data}


def target_of(step):
    return f"{step['resource_type']}:{step.get('id', NEW)}"


def run_batch(user, steps, *, atomic=False, idempotency_key=None, body_fingerprint=""):
    """Record the batch and run it now, one item per chunk; returns (operation, created)."""
    request = services.Request(
        resource_type=Mixed.name,
        operation_type=Batch.name,
        ids=[target_of(step) for step in steps],
        payloads=steps,
        mode=Mode.ATOMIC if atomic else Mode.PARTIAL,
        execution=Execution.SYNC,
        batch_size=1,
    )
    return services.start_operation(user, request, idempotency_key=idempotency_key, body_fingerprint=body_fingerprint)


def result_of(item):
    step = item.payload or {}
    result = {"index": item.position, "ref": step.get("ref")}
    if item.status == ItemStatus.SUCCEEDED:
        return {**result, "status": item.result["status"], "success": True, "data": item.result["data"]}
    code = item.error_code or errors.INTERNAL_ERROR
    error = error_of(code, item.error_message)
    return {**result, "status": errors.HTTP_STATUS.get(code, 500), "success": False, "error": error}


def report(op):
    """The batch's answer, from its operation and items."""
    items = op.items.order_by("position").only("position", "status", "error_code", "error_message", "payload", "result")
    return {
        "batch_id": op.pk,
        "status": op.status,
        "total_operations": op.total_items,
        "results": [result_of(item) for item in items],
        "summary": {
            **counters(op, "batch_summary"),
            "success_rate": op.success_rate,
            "progress": float(op.progress_percentage),
        },
        "created_at": op.created_at,
        "completed_at": op.completed_at,
    }


# --- batch get ---------------------------------------------------------------------------


def get_many(user, resource, ids, fields=None):
    """The records in request order, those `user` cannot see as 404 results: one query for all."""
    found = resource.visible(user).in_bulk(ids)
    bodies = dict(zip(found, resource.represent(list(found.values()), fields, many=True), strict=True))
    results = []
    for pk in ids:
        if pk in bodies:
            results.append({"id": pk, "status": "success", "data": bodies[pk], "error": None, "status_code": 200})
        else:
            refusal = errors.NotFound(f"{resource.label} {pk} not found")
            error = error_of(refusal.code, refusal.message)
            results.append({"id": pk, "status": "error", "data": None, "error": error, "status_code": 404})
    return {
        "results": results,
        "total_requested": len(ids),
        "total_succeeded": len(bodies),
        "total_failed": len(ids) - len(bodies),
        "processed_at": timezone.now(),
    }
