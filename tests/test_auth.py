"""Authentication: the token endpoint, both header keywords, sessions with CSRF (SPEC §2, §10)."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from .factories import TicketFactory, UserFactory

pytestmark = pytest.mark.django_db
TOKEN_URL = "/api/v1/auth/token/"


def test_the_token_endpoint_answers_200_with_the_token(user):
    response = APIClient().post(TOKEN_URL, {"username": user.username, "password": "pw"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}


def test_the_token_endpoint_takes_form_data_and_returns_the_same_token_each_time(user):
    first = APIClient().post(TOKEN_URL, {"username": user.username, "password": "pw"}).json()
    second = APIClient().post(TOKEN_URL, {"username": user.username, "password": "pw"}).json()
    assert first == second


@pytest.mark.parametrize(
    "data", [{"username": "nobody", "password": "pw"}, {"username": "{user}", "password": "wrong"}]
)
def test_wrong_credentials_are_400(user, data):
    data = {key: value.format(user=user.username) for key, value in data.items()}
    response = APIClient().post(TOKEN_URL, data, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["error"]["message"] == "Unable to log in with provided credentials."
    assert not Token.objects.exists()


def test_an_inactive_user_gets_no_token():
    user = UserFactory(is_active=False)
    response = APIClient().post(TOKEN_URL, {"username": user.username, "password": "pw"}, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize("data", [{}, {"username": "x"}, {"password": "pw"}])
def test_missing_credentials_are_400_naming_the_field(data):
    response = APIClient().post(TOKEN_URL, data, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"username", "password"} - set(data)


@pytest.mark.parametrize("body", ["{", "[" * 100_000])
def test_malformed_json_to_the_token_endpoint_is_400(db, body):
    response = APIClient().generic("POST", TOKEN_URL, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MALFORMED_REQUEST"


@pytest.mark.parametrize("keyword", ["Token", "Bearer", "bearer", "token"])
def test_both_keywords_authenticate(client_for, user, keyword):
    ticket = TicketFactory(requester=user)
    response = client_for(user, keyword=keyword).get(f"/api/v1/tickets/{ticket.pk}/")
    assert response.status_code == 200


def test_a_token_from_the_endpoint_works_as_bearer(user):
    key = APIClient().post(TOKEN_URL, {"username": user.username, "password": "pw"}, format="json").json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/tickets/").status_code == 200


@pytest.mark.parametrize("header", ["Token nope", "Bearer nope", "Bearer", "Token a b"])
def test_a_bad_token_is_401(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/tickets/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "NOT_AUTHENTICATED"


def test_no_credentials_is_401_with_a_challenge(db):
    response = APIClient().get("/api/v1/tickets/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"] == {
        "code": "NOT_AUTHENTICATED",
        "message": "Authentication credentials were not provided.",
        "details": None,
    }


def test_an_inactive_users_token_is_refused(client_for):
    user = UserFactory()
    client = client_for(user)
    user.is_active = False
    user.save()
    assert client.get("/api/v1/tickets/").status_code == 401


# --- sessions ---------------------------------------------------------------------------------


@pytest.fixture
def browser(user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_a_session_reads_the_api(browser, user):
    ticket = TicketFactory(requester=user)
    assert browser.get(f"/api/v1/tickets/{ticket.pk}/").status_code == 200


def test_a_session_write_without_a_csrf_token_is_403(browser):
    response = browser.post("/api/v1/tickets/", {"title": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PERMISSION_DENIED"
    assert "CSRF" in response.json()["error"]["message"]


def test_a_session_write_with_the_csrf_token_passes(browser):
    browser.get("/admin/login/")  # any page that sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    response = browser.post("/api/v1/tickets/", {"title": "x"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201


def test_a_token_request_needs_no_csrf_token(user):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.post("/api/v1/tickets/", {"title": "x"}, format="json").status_code == 201
