"""bulkops.sql: a chunk's rows as one JSON document, written as they are, to the microsecond."""

import uuid
from datetime import UTC, datetime

import pytest

from bulkops import services, sql
from bulkops.models import BulkOperationItem
from tickets.models import Ticket, TicketEvent
from tickets.services import Event

from ..factories import AgentFactory, TicketFactory

pytestmark = pytest.mark.django_db

AT = datetime(2026, 11, 27, 15, 4, 5, 123456, tzinfo=UTC)


def test_update_rows_writes_every_value_as_given_and_stamps_auto_now_once():
    first, second = TicketFactory(), TicketFactory()
    first.title, first.category_id, first.description = 'tab\tquote" back\\slash é', None, "x" * 5000
    second.title = "second"
    sql.update_rows(Ticket, [first, second], ["title", "category", "description", "updated_at"])
    rows = dict(Ticket.objects.values_list("pk", "title"))
    assert rows == {first.pk: 'tab\tquote" back\\slash é', second.pk: "second"}
    stamps = set(Ticket.objects.values_list("updated_at", flat=True))
    assert len(stamps) == 1 and stamps == {first.updated_at}  # auto_now: one now for the statement


def test_insert_rows_takes_light_rows_and_stamps_auto_now_add_once():
    ticket, agent = TicketFactory(), AgentFactory()
    rows = [Event(ticket.pk, agent.pk, None, "status", "open", None, "", AT) for _ in range(2)]
    sql.insert_rows(TicketEvent, rows, ["ticket", "actor", "bulk_operation", "field", "old_value", "new_value",
                                        "reason", "created_at"], returning=False)  # fmt: skip
    assert (
        list(TicketEvent.objects.values_list("field", "old_value", "new_value", "bulk_operation"))
        == [("status", "open", None, None)] * 2
    )
    assert set(TicketEvent.objects.values_list("created_at", flat=True)) == {rows[0].created_at}


def test_json_columns_keep_sql_null_apart_from_values():
    ticket = TicketFactory()
    op, _ = services.start_operation(
        AgentFactory(), services.Request("tickets", "update_status", [ticket.pk, ticket.pk + 1], {"status": "closed"})
    )
    first, second = op.items.order_by("position")
    first.before, first.result, second.before, second.result = None, {"at": AT}, {"a": [1, "b"]}, None
    sql.update_rows(BulkOperationItem, [first, second], ["before", "result"])
    stored = list(op.items.order_by("position").values_list("before", "result"))
    assert stored == [(None, {"at": AT.isoformat()}), ({"a": [1, "b"]}, None)]


def test_a_value_shared_by_every_row_is_written_to_every_row():
    tickets = TicketFactory.create_batch(3)
    for n, ticket in enumerate(tickets):
        ticket.status, ticket.version = "closed", 7 + n  # status: one value for all; version: one each
    sql.update_rows(Ticket, tickets, ["status", "version", "updated_at"])
    assert list(Ticket.objects.order_by("pk").values_list("status", "version")) == [
        ("closed", 7),
        ("closed", 8),
        ("closed", 9),
    ]


def test_equal_values_of_different_types_are_not_taken_for_one_value():
    op, _ = services.start_operation(
        AgentFactory(), services.Request("tickets", "update_status", [1, 2], {"status": "closed"})
    )
    first, second = op.items.order_by("position")
    first.result, second.result = {"n": 1}, {"n": True}  # equal in Python, not in JSON
    first.error_message, second.error_message = "same", "same"
    sql.update_rows(BulkOperationItem, [first, second], ["result", "error_message"])
    assert list(op.items.order_by("position").values_list("result", "error_message")) == [
        ({"n": 1}, "same"),
        ({"n": True}, "same"),
    ]


def test_insert_rows_with_every_column_but_the_first_shared_keeps_each_row():
    ticket, agent = TicketFactory(), AgentFactory()
    rows = [Event(ticket.pk, agent.pk, None, "status", "open", "closed", "why", AT) for _ in range(3)]
    sql.insert_rows(TicketEvent, rows, ["ticket", "actor", "bulk_operation", "field", "old_value", "new_value",
                                        "reason", "created_at"], returning=False)  # fmt: skip
    assert TicketEvent.objects.filter(ticket=ticket, new_value="closed", reason="why").count() == 3


@pytest.mark.parametrize(
    "values",
    [[], ["plain", 'quote" and \\ back', "comma, {brace}", "NULL", " spaced "], ["only"]],
)
def test_any_lookup_matches_text_values_exactly(values):
    tickets = {value: TicketFactory(external_id=value) for value in [*values, "other"]}
    found = set(Ticket.objects.filter(external_id__any=values).values_list("pk", flat=True))
    assert found == {tickets[value].pk for value in values}


def test_any_lookup_takes_ids_and_uuids():
    tickets = TicketFactory.create_batch(3)
    assert set(Ticket.objects.filter(pk__any=[tickets[0].pk, tickets[2].pk, 10**9])) == {tickets[0], tickets[2]}
    op, _ = services.start_operation(
        AgentFactory(), services.Request("tickets", "update_status", [tickets[0].pk], {"status": "closed"})
    )
    assert list(type(op).objects.filter(pk__any=[op.pk, uuid.uuid4()])) == [op]


def test_an_id_outside_the_columns_range_matches_nothing_instead_of_failing_the_query():
    ticket = TicketFactory()
    assert list(Ticket.objects.filter(pk__any=[ticket.pk, 2**64, -(2**64)])) == [ticket]
    assert list(Ticket.objects.filter(pk__any=[19978514937791475712])) == []
