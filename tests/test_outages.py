"""Redis outages (SPEC §16): while Redis is down, a request that needs it answers 503
SERVICE_UNAVAILABLE with Retry-After (the API's error body, or a plain page) and has created
nothing; requests that do not need Redis go on working. A real daphne on a Redis of its own."""

import re

import pytest
import requests
from rest_framework.authtoken.models import Token

from bulkops.models import BulkOperation

from . import servers
from .factories import AgentFactory, TicketFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def server(django_db_setup):
    """A daphne whose Redis (its own) has been stopped."""
    with servers.redis_server() as (redis_url, redis), servers.daphne(REDIS_URL=redis_url) as url:
        servers.stop(redis)
        yield url


@pytest.fixture
def outage(server):
    """(the server's URL, an API session of an agent)."""
    api = requests.Session()
    api.headers["Authorization"] = f"Token {Token.objects.create(user=AgentFactory()).key}"
    return server, api


def assert_unavailable(response):
    assert response.status_code == 503, response.text
    assert response.json() == {
        "error": {
            "code": "SERVICE_UNAVAILABLE",
            "message": "A service this request needs is unavailable; try again shortly.",
            "details": None,
        }
    }
    assert int(response.headers["Retry-After"]) > 0


def test_a_throttled_bulk_create_answers_503_and_creates_nothing(outage):
    url, api = outage
    body = {
        "ticket_ids": [TicketFactory().pk],
        "operation_type": "set_priority",
        "operation_data": {"priority": "high"},
    }
    assert_unavailable(api.post(f"{url}/api/v1/tickets/bulk-operations/", json=body, timeout=30))
    assert_unavailable(api.post(f"{url}/api/v1/batch/", json={"operations": []}, timeout=30))
    assert not BulkOperation.objects.exists()


def test_reads_that_do_not_need_redis_still_work(outage):
    url, api = outage
    TicketFactory()
    assert api.get(f"{url}/api/v1/tickets/", timeout=30).status_code == 200


def test_the_token_endpoint_answers_503(outage):
    url, _ = outage
    user = AgentFactory()
    assert_unavailable(requests.post(f"{url}/api/v1/auth/token/", json={"username": user.username, "password": "pw"}))
    assert not Token.objects.filter(user=user).exists()


def test_the_login_page_answers_a_plain_503_page(outage):
    url, _ = outage
    browser = requests.Session()
    form = browser.get(f"{url}/login/", timeout=30)
    assert form.status_code == 200  # showing the form needs no Redis
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    user = AgentFactory()
    answer = browser.post(
        f"{url}/login/",
        data={"username": user.username, "password": "pw", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{url}/login/"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 503
    assert answer.headers["Content-Type"].startswith("text/html")
    assert int(answer.headers["Retry-After"]) > 0
    assert "Service unavailable" in answer.text
    assert "sessionid" not in browser.cookies


def test_without_postgresql_the_api_answers_503_and_pages_a_plain_503():
    """A PostgreSQL that does not answer (here: nothing listens on its port) is an outage too."""
    dead = f"postgres://postgres@127.0.0.1:{servers.free_port()}/bulkops"
    with servers.daphne(DATABASE_URL=dead, BULKOPS_DB_POOL_TIMEOUT="1") as url:
        assert_unavailable(requests.get(f"{url}/api/v1/tickets/", headers={"Authorization": "Token x"}, timeout=30))
        session = {"sessionid": "a" * 32}  # a well-formed key: looking it up needs the database
        page = requests.get(f"{url}/tickets/", cookies=session, allow_redirects=False, timeout=30)
        assert page.status_code == 503
        assert "Service unavailable" in page.text
