"""The OpenAPI schema and its docs page (SPEC §8)."""

import re

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/v1/auth/token/", {"post"}),
        ("/api/v1/tickets/", {"get", "post"}),
        ("/api/v1/tickets/{id}/", {"get", "patch", "delete"}),
        ("/api/v1/tickets/{id}/history/", {"get"}),
        ("/api/v1/tickets/{id}/comments/", {"get", "post"}),
        ("/api/v1/tickets/{id}/restore/", {"post"}),
        ("/api/v1/categories/", {"get", "post"}),
        ("/api/v1/categories/{id}/", {"get", "patch", "delete"}),
        ("/api/v1/metrics/", {"get", "post"}),
        ("/api/v1/metrics/{id}/", {"get", "patch"}),
        ("/api/v1/metrics/{id}/permissions/", {"get", "post"}),
    ],
)
def test_the_schema_has_the_ticket_and_metric_endpoints(schema, path, methods):
    assert methods <= set(schema["paths"][path])


def test_the_schema_documents_the_ticket_filters(schema):
    names = {p["name"] for p in schema["paths"]["/api/v1/tickets/"]["get"]["parameters"]}
    expected = {"status", "priority", "category", "assignee", "requester", "search", "created_after", "created_before"}
    assert expected <= names


def test_the_schema_shows_the_real_request_bodies(schema):
    patch = schema["paths"]["/api/v1/tickets/{id}/"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert patch["$ref"].endswith("/PatchedTicketPatchRequest")
    properties = schema["components"]["schemas"]["PatchedTicketPatchRequest"]["properties"]
    assert {
        "title", "description", "status", "priority", "category_id", "assignee_id", "external_id", "version"
    } == set(properties)  # fmt: skip


def test_the_schema_names_both_token_keywords(schema):
    assert {"tokenAuth", "bearerAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_the_schema_is_valid_openapi_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3")


def test_the_docs_page_is_served(db):
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


# --- a contract generated clients can use (SPEC §15) --------------------------------------


def operations(schema):
    return [(path, method, op) for path, methods in schema["paths"].items() for method, op in methods.items()]


def test_request_bodies_are_json_only_but_imports_take_a_file(schema):
    media = {
        (path.endswith("/imports/"), m)
        for path, _, op in operations(schema)
        for m in op.get("requestBody", {}).get("content", {})
    }
    assert media == {(False, "application/json"), (True, "multipart/form-data")}


def test_operation_ids_are_snake_case_and_tags_name_the_resource(schema):
    ids = [op["operationId"] for _, _, op in operations(schema)]
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) for i in ids), [i for i in ids if "." in i]
    assert len(set(ids)) == len(ids)
    tags = {tag for _, _, op in operations(schema) for tag in op["tags"]}
    assert tags == {"auth", "batch", "bulk-operations", "categories", "metrics", "tickets"}


def test_every_operation_documents_its_errors_with_the_error_body(schema):
    for path, method, op in operations(schema):
        expected = {"401", "403", "404"} | ({"400", "413", "429"} if "requestBody" in op else set())
        assert expected <= set(op["responses"]), (method, path)
        body = op["responses"]["404"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)


def test_a_create_body_is_typed_per_operation_type(schema):
    body = schema["paths"]["/api/v1/tickets/bulk-operations/"]["post"]["requestBody"]["content"]
    create = schema["components"]["schemas"][body["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]]
    assert create["discriminator"]["propertyName"] == "operation_type"
    assert set(create["discriminator"]["mapping"]) == {
        "update_status", "add_comment", "assign", "set_priority", "set_category", "update_fields", "delete", "restore"
    }  # fmt: skip
    update_status = schema["components"]["schemas"]["TicketsUpdateStatusRequest"]["properties"]
    assert update_status["operation_data"] == {"$ref": "#/components/schemas/StatusDataRequest"}
    assert update_status["ticket_ids"]["items"] == {"type": "integer"}
    assert "metric_ids" not in update_status
    metric = schema["components"]["schemas"]["MetricsSetVerificationRequest"]["properties"]
    assert metric["metric_ids"]["items"] == {"type": "string", "format": "uuid"}


def test_a_replayed_create_has_the_shape_of_the_answer_it_repeats(schema):
    replay = schema["paths"]["/api/v1/bulk-operations/"]["post"]["responses"]["200"]["content"]["application/json"]
    one_of = schema["components"]["schemas"][replay["schema"]["$ref"].rsplit("/", 1)[-1]]["oneOf"]
    assert {"$ref": "#/components/schemas/Created"} in one_of
    revert = schema["paths"]["/api/v1/bulk-operations/{id}/revert/"]["post"]["responses"]
    assert revert["200"]["content"] == revert["202"]["content"]


def test_the_csv_export_and_field_selection_are_documented(schema):
    csv = schema["paths"]["/api/v1/bulk-operations/{id}/items.csv"]["get"]["responses"]["200"]["content"]
    assert set(csv) == {"text/csv"}
    status = schema["paths"]["/api/v1/bulk-operations/{id}/"]["get"]
    assert "fields" in {p["name"] for p in status["parameters"]}


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/v1/tickets/", "patch"), ("/api/v1/metrics/", "put")],
    ids=["tickets_patch", "metrics_put"],
)
def test_a_collection_change_says_its_operation_id_is_null_when_nothing_was_recorded(schema, path, method):
    answer = schema["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
    operation_id = schema["components"]["schemas"][answer["$ref"].rsplit("/", 1)[-1]]["properties"]["operation_id"]
    assert operation_id["format"] == "uuid"
    assert operation_id["nullable"] is True


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_load_their_scripts_from_our_own_static_files(url):
    content = APIClient().get(url).content.decode()
    assert "/static/drf_spectacular_sidecar/" in content
    scripts = re.findall(r'<script[^>]* src="([^"]+)"', content)
    assert scripts and all(src.startswith("/static/") for src in scripts), scripts  # offline: no CDN


def test_path_ids_are_typed(schema):
    def id_of(path):
        return next(p["schema"] for p in schema["paths"][path]["get"]["parameters"] if p["in"] == "path")

    assert id_of("/api/v1/tickets/{id}/") == {"type": "integer"}
    assert id_of("/api/v1/metrics/{id}/") == {"type": "string", "format": "uuid"}
    assert id_of("/api/v1/bulk-operations/{id}/") == {"type": "string", "format": "uuid"}


@pytest.mark.parametrize("resource", ["tickets", "metrics"])
@pytest.mark.parametrize("method", ["post", "patch"])
def test_a_single_create_or_change_documents_its_conflict(schema, resource, method):
    path = f"/api/v1/{resource}/" if method == "post" else f"/api/v1/{resource}/{{id}}/"
    assert "409" in schema["paths"][path][method]["responses"]
