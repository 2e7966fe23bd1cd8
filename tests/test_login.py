"""Login throttling (SPEC §16): after 10 failed logins in 5 minutes for one user name or one
client address, the token endpoint and the login page answer 429 with Retry-After."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from .factories import UserFactory

pytestmark = pytest.mark.django_db
TOKEN_URL = "/api/v1/auth/token/"
LIMIT = 10


def token(username, password, address="127.0.0.1"):
    return APIClient(REMOTE_ADDR=address).post(TOKEN_URL, {"username": username, "password": password}, format="json")


def page_login(username, password, address="127.0.0.1"):
    return Client(REMOTE_ADDR=address).post("/login/", {"username": username, "password": password})


def test_the_11th_token_request_after_10_failures_is_429_even_with_the_right_password(user):
    for _ in range(LIMIT):
        assert token(user.username, "wrong").status_code == 400
    refused = token(user.username, "pw")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "THROTTLED"
    assert refused.json()["error"]["message"].startswith("Too many failed logins")
    assert 0 < int(refused["Retry-After"]) <= 300


def test_failures_are_counted_per_user_name_across_addresses(user):
    for n in range(LIMIT):
        assert token(user.username, "wrong", address=f"10.0.0.{n}").status_code == 400
    assert token(user.username, "pw", address="10.0.1.1").status_code == 429


def test_failures_are_counted_per_client_address_across_user_names(user):
    for n in range(LIMIT):
        assert token(f"nobody{n}", "wrong", address="10.0.0.7").status_code == 400
    assert token(user.username, "pw", address="10.0.0.7").status_code == 429
    assert token(user.username, "pw", address="10.0.0.8").status_code == 200  # another address may


def test_logins_before_the_limit_work():
    user = UserFactory()
    for _ in range(LIMIT - 1):
        assert token(user.username, "wrong").status_code == 400
    assert token(user.username, "pw").status_code == 200
    assert page_login(user.username, "pw").status_code == 302


def test_the_login_page_answers_429_with_a_message_after_10_failures(user):
    for _ in range(LIMIT):
        assert page_login(user.username, "wrong").status_code == 200  # the form again, with its error
    refused = page_login(user.username, "pw")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 300
    assert "Too many failed logins" in refused.content.decode()
    assert "_auth_user_id" not in refused.wsgi_request.session


def test_failures_on_the_page_and_the_api_count_together(user):
    for n in range(LIMIT):
        (token if n % 2 else page_login)(user.username, "wrong")
    assert token(user.username, "pw").status_code == 429
    assert page_login(user.username, "pw").status_code == 429


@pytest.mark.parametrize("body", ["[]", '"agent"', "null"])
def test_a_token_request_that_is_not_an_object_is_400(db, body):
    response = APIClient().generic("POST", TOKEN_URL, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_the_admin_login_is_throttled_too(staff):
    for _ in range(LIMIT):
        assert Client().post("/admin/login/", {"username": staff.username, "password": "wrong"}).status_code == 200
    refused = Client().post("/admin/login/", {"username": staff.username, "password": "pw"})
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.content.decode()
    assert Client().get("/admin/login/").status_code == 200
