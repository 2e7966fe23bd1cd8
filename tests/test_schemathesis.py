"""Property-based fuzzing of every operation in /api/schema/ (schemathesis: examples, coverage
and fuzzing phases): no input may cause a 5xx, and every response must match the schema the
API publishes. Random on a developer's machine (each run explores new inputs), derandomized
under CI (a red CI run is reproducible and not down to luck)."""

import os
import string

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection, transaction
from django.test import override_settings
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from psycopg.pq import TransactionStatus
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from config.wsgi import application

from .factories import CategoryFactory, MetricFactory, StaffFactory, TicketFactory

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
# A `callback_url` the fuzzer makes names its host by address: a host name would be looked up
# in DNS for every request (with no network here, a lookup of `0.com` waited 5 s for the
# resolver now and then; the case took 110–145 s). The address checks are the webhook tests'.
URL_SAFE = string.ascii_letters + string.digits + "-._~"
schemathesis.openapi.format(
    "uri",
    st.builds("http://{}:{}/{}".format, st.ip_addresses(v=4).map(str), st.integers(1, 65535), st.text(URL_SAFE)),
)
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
EXAMPLES = 20
TRANSACTION_FAILED = TransactionStatus.INERROR  # per operation and phase: ~60 operations, a few minutes on two cores


# --- the fuzz run ------------------------------------------------------------------------------


@pytest.fixture
def in_test_transaction():
    """As Django's test client does: a request must not close the connection that holds the
    test's transaction (the WSGI handler closes "old" connections at each request's end)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(db, in_test_transaction):
    """A staff user (who may see and do the most), and some records for the requests to meet."""
    staff = StaffFactory()
    TicketFactory.create_batch(3, requester=staff)
    MetricFactory(owner=staff)
    CategoryFactory()
    return Token.objects.create(user=staff).key


@pytest.mark.django_db
# No network here: a callback_url's DNS lookup would wait for the resolver's timeout. The
# address checks themselves are the webhook tests' business.
@override_settings(BULKOPS_WEBHOOK_ALLOW_PRIVATE=True)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,  # a request does real database work: its time varies with the machine's load
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[
        HealthCheck.too_slow,  # each example is a real request against PostgreSQL
        HealthCheck.function_scoped_fixture,  # on purpose: one user for every example, each rolled back
        HealthCheck.filter_too_much,  # schemathesis filters what the schema cannot express (e.g. ids)
    ],
)
def test_no_request_causes_a_server_error_or_a_response_outside_the_schema(case, token):
    # `?fields=` answers with the named fields only, by design: the 200 schema is the full shape.
    if case.query:
        case.query.pop("fields", None)
    # Each request in a savepoint, rolled back: one that leaves the transaction aborted (a
    # database error) must not fail the requests after it.
    savepoint = transaction.savepoint_create()
    try:
        case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
    finally:
        transaction.savepoint_rollback(savepoint)


# --- what the fuzzer found, pinned --------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/tickets/", "/api/v1/bulk-operations/"])
def test_a_created_after_with_an_offset_postgresql_cannot_store_is_not_a_server_error(client_for, path):
    """Python accepts UTC offsets up to ±23:59, PostgreSQL only ±15:59 (it was a DataError)."""
    response = client_for(StaffFactory()).get(path, {"created_after": "2024-01-01T00:00+21:00"})
    assert response.status_code < 500


@pytest.mark.django_db
def test_options_on_the_metrics_list_describes_it(client_for):
    """DRF's metadata calls get_object() for the list's PUT (it was a KeyError on 'pk')."""
    assert client_for(StaffFactory()).options("/api/v1/metrics/").status_code == 200


# --- stateful: follow the links from a create to its status, items, cancel, revert, retry ---------

Scenarios = schema.as_state_machine()


@pytest.mark.django_db
@override_settings(BULKOPS_WEBHOOK_ALLOW_PRIVATE=True)
def test_no_sequence_of_linked_requests_causes_a_server_error_or_a_response_outside_the_schema(token):
    class AsStaff(Scenarios):
        """Each scenario starts from the same records (Hypothesis replays scenarios while it
        shrinks: they must not see what earlier ones left), and within one, each step sees
        what the steps before it made."""

        def setup(self):
            self.start = transaction.savepoint_create()

        def teardown(self):
            transaction.savepoint_rollback(self.start)

        def get_call_kwargs(self, case):
            if case.query:
                case.query.pop("fields", None)  # a projection, by design (see above)
            return {"headers": {"Authorization": f"Token {token}"}}

        def call(self, case, **kwargs):
            step = transaction.savepoint_create()
            try:
                response = case.call(**kwargs)
            finally:
                # A step PostgreSQL refused must not leave the scenario's transaction aborted.
                if connection.connection.info.transaction_status == TRANSACTION_FAILED:
                    transaction.savepoint_rollback(step)
                else:
                    transaction.savepoint_commit(step)
            return response

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS)

    AsStaff.run(
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=6,
            deadline=None,  # real database work
            derandomize=bool(os.environ.get("CI")),
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],  # as above
        )
    )
