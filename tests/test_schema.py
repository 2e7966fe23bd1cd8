"""The OpenAPI schema and its docs page (SPEC §8)."""

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
    assert {"title", "description", "status", "priority", "category_id", "assignee_id", "version"} == set(properties)


def test_the_schema_names_both_token_keywords(schema):
    assert {"tokenAuth", "bearerAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_the_schema_is_valid_openapi_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3")


def test_the_docs_page_is_served(db):
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
