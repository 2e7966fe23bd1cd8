import django_rq
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from .factories import AgentFactory, StaffFactory, UserFactory


@pytest.fixture(autouse=True)
def clean_redis():
    """Each test starts with empty queues, caches (throttles) and channel groups."""
    django_rq.get_connection("bulkops").flushdb()
    yield


def api_client(user=None, keyword="Token"):
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"{keyword} {token.key}")
    return client


@pytest.fixture
def client_for(db):
    """client_for(user) ⇒ an API client authenticated with the user's token."""
    return api_client


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def agent(db):
    return AgentFactory()


@pytest.fixture
def staff(db):
    return StaffFactory()


@pytest.fixture
def admin_client(client, staff):
    """A browser session (Django's test client) logged in as staff: the pages and the admin."""
    client.force_login(staff)
    return client
