"""The strict base of the selecting filtersets, as the metric list endpoint shows it (the
ticket list's own cases are in tests/tickets/test_filtersets.py)."""

import django_filters
import pytest
from django.utils.datastructures import MultiValueDict

from bulkops.filtersets import StrictFilterSet
from tickets.models import Comment, Status, Ticket

from ..factories import MetricFactory, TicketFactory

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


class CommentedFilterSet(StrictFilterSet):
    """One filter on the ticket's own column, one across a to-many relation (its comments)."""

    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    comment = django_filters.MultipleChoiceFilter(field_name="comments__body", choices=[("yes", "yes"), ("no", "no")])

    class Meta:
        model = Ticket
        fields = ["status", "comment"]


def test_a_filter_across_a_to_many_relation_selects_each_record_once():
    ticket, other = TicketFactory(), TicketFactory()
    for body in ("yes", "yes", "no"):
        Comment.objects.create(ticket=ticket, author=ticket.requester, body=body)
    Comment.objects.create(ticket=other, author=other.requester, body="no")
    selected = CommentedFilterSet(MultiValueDict({"comment": ["yes", "no"]}), queryset=Ticket.objects.all()).qs
    assert sorted(selected.values_list("pk", flat=True)) == [ticket.pk, other.pk]


def test_a_filter_on_the_records_own_column_selects_without_distinct():
    # DISTINCT would sort every selected row for nothing: a million-ticket selection paid ~0.5 s.
    opened, pending = TicketFactory(status="open"), TicketFactory(status="pending")
    TicketFactory(status="closed")
    selected = CommentedFilterSet(MultiValueDict({"status": ["open", "pending"]}), queryset=Ticket.objects.all()).qs
    assert not selected.query.distinct
    assert sorted(selected.values_list("pk", flat=True)) == [opened.pk, pending.pk]
