"""config.middleware: requests refused at the door, before anything reads them."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from bulkops.models import BulkOperation

pytestmark = pytest.mark.django_db

NUL_MESSAGE = "Text cannot contain NUL (\\u0000) characters."


@pytest.mark.parametrize(
    ("header", "value"),
    [("Authorization", "Token abc\x00def"), ("Authorization", "Bearer abc\x00def"), ("X-Request-Id", "a\x00")],
)
def test_a_nul_character_in_a_header_is_400_naming_it(header, value):
    client = APIClient()
    response = client.get("/api/v1/tickets/", headers={header: value})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "VALIDATION_ERROR",
        "message": f"{header}: {NUL_MESSAGE}",
        "details": {header: [NUL_MESSAGE]},
    }


@pytest.mark.parametrize("path", ["/tickets/", "/api/v1/tickets/", "/admin/"])
def test_a_nul_character_in_a_cookie_is_400(path):
    client = Client()
    client.cookies["sessionid"] = "abcdefgh\x00ijklmnop"
    response = client.get(path)
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"Cookie": [NUL_MESSAGE]}


def test_a_nul_character_in_a_header_of_a_write_stores_nothing(client_for, agent):
    response = client_for(agent).post(
        "/api/v1/bulk-operations/",
        {"resource_type": "tickets", "ids": [1], "operation_type": "delete"},
        format="json",
        headers={"X-Client": "x\x00"},
    )
    assert response.status_code == 400
    assert not BulkOperation.objects.exists()
