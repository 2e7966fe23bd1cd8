"""The strict base of the selecting filtersets, as the metric list endpoint shows it (the
ticket list's own cases are in tests/tickets/test_filtersets.py)."""

import pytest

from ..factories import MetricFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"owner": ""}, "owner", "Empty: give a value, or leave this filter out."),
        ({"verification": ""}, "verification", "Empty: give a value, or leave this filter out."),
        ({"search": ""}, "search", "Empty: give a value, or leave this filter out."),
        ({"owner": "me"}, "owner", "Enter a whole number."),
    ],
)
def test_a_metric_filter_that_cannot_be_used_is_400_naming_it(client_for, staff, params, field, message):
    MetricFactory()
    response = client_for(staff).get("/api/v1/metrics/", params)
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "VALIDATION_ERROR", "message": f"{field}: {message}", "details": {field: [message]}}
    }
