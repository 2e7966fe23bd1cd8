"""The OpenAPI schema as generated clients need it: stable snake_case operation ids, `?fields=`
where it works, every error response with the error body, and one typed create body per
operation type (a `oneOf` told apart by `operation_type`)."""

import re
from functools import cache

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer
from rest_framework import serializers

from .. import registry
from ..representation import CreatedSerializer, FieldSelectionMixin, OperationSerializer
from .serializers import CreateOperationSerializer, public_names

FIELDS = OpenApiParameter(
    "fields",
    str,
    description="Comma-separated field names: answer with only these (unknown names are ignored)",
)

# What any endpoint may answer, beside what it declares itself.
ANY_REQUEST = {
    "401": "not authenticated",
    "403": "not allowed",
    "404": "not found, or not visible to you",
}
WITH_BODY = {
    "400": "invalid request: `error.details` names each field",
    "413": "request body too large",
    "429": "throttled: wait `Retry-After` seconds",
    "503": "a service the request needs is down: retry after `Retry-After` seconds",
}
WITH_QUERY = {"400": "invalid query parameter: `error.details` names it"}


class AutoSchema(openapi.AutoSchema):
    """The project's schema class (DEFAULT_SCHEMA_CLASS)."""

    def get_operation_id(self):
        # `bulk_operations_items.csv_retrieve` ⇒ `bulk_operations_items_csv_retrieve`: a dot
        # makes an unusable function name in most generated clients.
        return re.sub(r"[^a-z0-9]+", "_", super().get_operation_id().lower()).strip("_")

    def get_tags(self):
        # The three mounts of the bulk-operation endpoints are one resource.
        return ["bulk-operations"] if "bulk-operations" in self.path else super().get_tags()

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if self.method == "GET" and self.selects_fields():
            parameters = [*parameters, FIELDS]
        return parameters

    def selects_fields(self):
        """Whether the 200 answer's serializer takes `?fields=` (FieldSelectionMixin)."""
        serializer = self.get_response_serializers()
        if isinstance(serializer, dict):
            serializer = serializer.get(200)
        serializer = getattr(serializer, "response", serializer)  # an OpenApiResponse
        serializer = getattr(serializer, "child", serializer)  # many=True
        cls = serializer if isinstance(serializer, type) else type(serializer)
        return issubclass(cls, FieldSelectionMixin)


def postprocess(result, generator, request, public):
    """Postprocessing hook: document the errors an endpoint can give, and link a created
    operation to what can be done with it next (OpenAPI links: `operation_id` ⇒ `{id}`)."""
    for path, methods in result.get("paths", {}).items():
        for operation in methods.values():
            document_errors(operation)
            type_path_ids(operation)
        if path.endswith("/bulk-operations/") and "post" in methods:
            link_follow_ups(methods["post"])
    return result


# A `{id}` matched by a lookup regex is typed by what the regex admits, not as any string.
PATH_ID_TYPES = {
    "^[0-9]+$": {"type": "integer"},
    "^[0-9a-fA-F-]{36}$": {"type": "string", "format": "uuid"},
    "^[0-9a-fA-F-]{32,36}$": {"type": "string", "format": "uuid"},
}


def type_path_ids(operation):
    for parameter in operation.get("parameters", []):
        typed = PATH_ID_TYPES.get(parameter["schema"].get("pattern")) if parameter["in"] == "path" else None
        if typed:
            parameter["schema"] = dict(typed)


def document_errors(operation):
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    codes = dict(ANY_REQUEST)
    if "requestBody" in operation:
        codes.update(WITH_BODY)
    elif any(p.get("in") == "query" for p in operation.get("parameters", [])):
        codes.update(WITH_QUERY)
    responses = operation.setdefault("responses", {})
    for code, description in codes.items():
        responses.setdefault(code, {"description": description, "content": error})


FOLLOW_UPS = (
    "retrieve", "partial_update", "items_list", "cancel_create", "pause_create", "resume_create", "revert_create",
    "retry_create",
)  # fmt: skip


def link_follow_ups(create):
    prefix = create["operationId"].removesuffix("_create")
    links = {
        camel(name): {"operationId": f"{prefix}_{name}", "parameters": {"id": "$response.body#/operation_id"}}
        for name in FOLLOW_UPS
    }
    for code in ("200", "202"):
        create["responses"][code]["links"] = links


# 200 is a sync operation's final status, or a replayed Idempotency-Key's first answer, whose
# shape is the 202 it repeats.
OPERATION_OR_REPLAY = PolymorphicProxySerializer(
    component_name="OperationOrReplay",
    serializers=[OperationSerializer, CreatedSerializer],
    resource_type_field_name=None,
)


def camel(name):
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


@cache
def create_body(resource, operation_type):
    """The create request of one operation type: its own `operation_data`, typed ids, and of
    the id aliases only its resource's."""
    definition = registry.get(resource, operation_type)
    alias = definition.resource.id_alias

    def ids():
        return serializers.ListField(child=definition.id_field(), required=False, allow_empty=False)

    fields = {
        "operation_type": serializers.ChoiceField(choices=[operation_type]),
        "operation_data": definition.data_serializer(required=False),
        "ids": ids(),
        **({alias: ids()} if alias else {}),
        "id_aliases": lambda self: [alias] if alias else [],
    }
    return type(f"{camel(resource)}{camel(operation_type)}", (CreateOperationSerializer,), fields)


def create_request(resource):
    """`oneOf` the create bodies of the resource (every resource for the generic mount)."""
    resources = [resource] if resource else registry.resources()
    bodies = {name: create_body(res, name) for res in resources for name in public_names(res)}
    if len(bodies) == 1:  # a `oneOf` of one confuses generators: the body itself
        return next(iter(bodies.values()))
    return PolymorphicProxySerializer(
        component_name=f"{camel(resource or 'any')}OperationCreate",
        serializers=bodies,
        resource_type_field_name="operation_type",
    )


class OperationSchema(AutoSchema):
    """The bulk-operation viewset's: the create body depends on the mount's resource."""

    def get_request_serializer(self):
        if getattr(self.view, "action", None) == "create":
            return create_request(self.view.resource_type)
        return super().get_request_serializer()
