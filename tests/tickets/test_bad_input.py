"""Bad input to the ticket endpoints: always a clear 4xx, never a 500, nothing changed."""

import json

import pytest
from django.test import override_settings

from tickets.models import Ticket

from ..factories import TicketFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ticket():
    return TicketFactory()


@pytest.fixture
def client(client_for, agent):
    return client_for(agent)


def patch_raw(client, ticket, body, content_type="application/json"):
    return client.generic("PATCH", f"/api/v1/tickets/{ticket.pk}/", body, content_type=content_type)


def assert_unchanged(ticket):
    assert Ticket.objects.get(pk=ticket.pk).version == ticket.version


@pytest.mark.parametrize("body", ['{"title": ', "not json", '{"title": "x",}', "[1, 2"])
def test_malformed_json_is_400_malformed_request(client, ticket, body):
    response = patch_raw(client, ticket, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "MALFORMED_REQUEST"
    assert error["message"].startswith("JSON parse error")
    assert_unchanged(ticket)


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"title": NaN}', b'{"title": "\xff"}'])
def test_json_python_cannot_take_is_400_malformed_request(client, ticket, body):
    response = patch_raw(client, ticket, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MALFORMED_REQUEST"
    assert_unchanged(ticket)


@pytest.mark.parametrize("body", ["[]", '"text"', "42", "null"])
def test_a_body_that_is_not_an_object_is_400(client, ticket, body):
    response = patch_raw(client, ticket, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert_unchanged(ticket)


def test_an_unknown_field_is_400_naming_it(client, ticket):
    response = client.patch(f"/api/v1/tickets/{ticket.pk}/", {"titel": "typo"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "VALIDATION_ERROR",
        "message": "titel: Unknown field.",
        "details": {"titel": ["Unknown field."]},
    }


@pytest.mark.parametrize("field", ["id", "version_id", "requester_id", "is_deleted", "created_at"])
def test_read_only_or_made_up_fields_are_refused_on_patch(client, ticket, field):
    response = client.patch(f"/api/v1/tickets/{ticket.pk}/", {field: 1}, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert_unchanged(ticket)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"status": "done"}, "status"),
        ({"status": "OPEN"}, "status"),
        ({"priority": "critical"}, "priority"),
        ({"status": 3}, "status"),
        ({"priority": None}, "priority"),
    ],
)
def test_an_unknown_enum_value_is_400(client, ticket, data, field):
    response = client.patch(f"/api/v1/tickets/{ticket.pk}/", data, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert_unchanged(ticket)


@pytest.mark.parametrize(
    "data",
    [
        {"title": {"a": 1}},
        {"title": ["x"]},
        {"title": ""},
        {"title": "x" * 201},
        {"title": "nul\x00char"},
        {"assignee_id": "someone"},
        {"assignee_id": 1.5},
        {"category_id": [1]},
        {"category_id": 2**70},
        {"version": "one", "title": "x"},
        {"version": 0, "title": "x"},
        {"description": 12},
    ],
)
def test_wrong_types_are_400(client, ticket, data):
    response = client.patch(f"/api/v1/tickets/{ticket.pk}/", data, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert_unchanged(ticket)


def test_a_wrong_content_type_is_415(client, ticket):
    response = patch_raw(client, ticket, "title=x", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_an_oversized_body_is_413_before_it_is_read(client, ticket):
    body = json.dumps({"description": "x" * 2000})
    response = patch_raw(client, ticket, body)
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "REQUEST_TOO_LARGE",
        "message": f"The request body is {len(body)} bytes; the limit is 1000.",
        "details": None,
    }
    assert_unchanged(ticket)


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_within_the_limit_passes(client, ticket):
    assert patch_raw(client, ticket, json.dumps({"description": "x" * 900})).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/tickets/abc/", "/api/v1/tickets/1.5/", "/api/v1/nothing-here/"])
def test_an_unknown_api_url_is_a_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("patch", "", {"title": "x"}),
        ("delete", "", None),
        ("post", "restore/", None),
        ("post", "comments/", {"body": "x"}),
    ],
)
def test_an_id_beyond_any_integer_is_404(client, method, suffix, body):
    response = getattr(client, method)(f"/api/v1/tickets/{2**80}/{suffix}", body, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_put_is_405(client, ticket):
    response = client.put(f"/api/v1/tickets/{ticket.pk}/", {"title": "x"}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_bad_comment_input_is_400(client, ticket):
    for data in [{}, {"body": None}, {"body": "x", "author": 1}, {"body": "x" * 10_001}]:
        response = client.post(f"/api/v1/tickets/{ticket.pk}/comments/", data, format="json")
        assert response.status_code == 400, data
    assert not ticket.comments.exists()


def test_bad_create_input_is_400_and_creates_nothing(client):
    for data in [{"title": "x", "status": "nope"}, {"title": 5.5}, {"title": "x", "id": 7}]:
        assert client.post("/api/v1/tickets/", data, format="json").status_code == 400, data
    assert not Ticket.objects.exists()


NUL_MESSAGE = "Text cannot contain NUL (\\u0000) characters."


@pytest.mark.parametrize("params", [{"search": "print\x00er"}, {"status": "\x00"}, {"requester": "1\x00"}])
def test_a_nul_character_in_a_list_filter_is_400_naming_it(client, ticket, params):
    response = client.get("/api/v1/tickets/", params)
    assert response.status_code == 400
    name = next(iter(params))
    assert response.json()["error"] == {
        "code": "VALIDATION_ERROR",
        "message": f"{name}: {NUL_MESSAGE}",
        "details": {name: [NUL_MESSAGE]},
    }


def test_a_nul_character_in_the_ticket_pages_filter_is_400(admin_client, ticket):
    assert admin_client.get("/tickets/", {"search": "\x00"}).status_code == 400


def test_a_nul_character_in_a_create_body_is_400_and_creates_nothing(client):
    response = client.post("/api/v1/tickets/", {"title": "ok", "description": "a\x00b"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"description": [NUL_MESSAGE]}
    assert not Ticket.objects.exists()


def test_a_nul_character_in_a_body_of_another_charset_is_400(client, ticket):
    body = json.dumps({"description": "a\x00b"}, ensure_ascii=False).encode("utf-16")
    response = patch_raw(client, ticket, body, content_type="application/json; charset=utf-16")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"description": [NUL_MESSAGE]}
    assert_unchanged(ticket)
