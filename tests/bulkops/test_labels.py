"""bulkops.labels: stored values as the forms showed them, and counts in words."""

import pytest

from bulkops import labels, registry

from ..factories import CategoryFactory, UserFactory


@pytest.mark.parametrize(
    ("number", "resource", "text"),
    [(1, "tickets", "1 ticket"), (2, "tickets", "2 tickets"), (0, "metrics", "0 metrics"), (1, "mixed", "1 record")],
)
def test_a_count_reads_in_the_singular_or_the_plural(number, resource, text):
    assert labels.count_of(number, resource) == text


@pytest.mark.django_db
def test_ids_are_named_and_choices_labelled_with_one_query_per_field(django_assert_num_queries):
    dana, printers = UserFactory(username="dana"), CategoryFactory(name="Printers")
    rows = [
        {"status": "in_progress", "assignee_id": dana.pk, "category_id": printers.pk},
        {"status": "closed", "assignee_id": None, "category_id": str(printers.pk)},  # a form's text id
    ]
    with django_assert_num_queries(2):
        shown = labels.shown_rows(registry.get("tickets", "update_fields"), rows)
    assert shown == [
        {"status": "In Progress", "assignee_id": "dana", "category_id": "Printers"},
        {"status": "Closed", "assignee_id": "none", "category_id": "Printers"},
    ]


@pytest.mark.django_db
def test_an_id_that_no_longer_exists_says_so():
    assert labels.shown_data(registry.get("tickets", "assign"), {"assignee_id": 424242}) == [
        ("Assignee", "#424242 (gone)")
    ]


def test_an_operation_no_longer_registered_shows_its_values_as_stored():
    assert labels.shown_data(None, {"colour": "red"}) == [("Colour", "red")]
