"""A resource registered by an app the engine has never heard of (tests/bookshelf: one
Resource, one OperationType) gets the whole engine, through the real API and a real worker."""

import csv
import io

import pytest
from rest_framework.test import APIClient

from bulkops.models import BulkOperation
from tests.bookshelf.models import Book

from ..factories import BookFactory
from .helpers import work_off

pytestmark = pytest.mark.django_db(transaction=True)  # the worker sees what the request committed

MOUNT = "/api/v1/books/bulk-operations/"


def move(client, books, shelf="B", **options):
    body = {
        "book_ids": [book.pk for book in books],
        "operation_type": "move_to_shelf",
        "operation_data": {"shelf": shelf},
    }
    return client.post(MOUNT, {**body, **options}, format="json")


def shelves():
    return dict(Book.objects.values_list("title", "shelf"))


@pytest.fixture
def books(db):
    return BookFactory.create_batch(3)


def test_an_async_operation_runs_on_a_real_worker_with_items_and_csv(client_for, user, books):
    client = client_for(user)
    created = move(client, books)
    assert created.status_code == 202
    op_id = created.json()["operation_id"]
    assert created["Location"].endswith(f"/api/v1/bulk-operations/{op_id}/")
    assert set(shelves().values()) == {"A"}  # nothing before the worker
    work_off()
    status = client.get(f"{MOUNT}{op_id}/").json()
    assert (status["resource_type"], status["status"], status["successful_items"]) == ("books", "completed", 3)
    assert set(shelves().values()) == {"B"}
    items = client.get(f"{MOUNT}{op_id}/items/").json()["items"]
    assert [(i["item_id"], i["status"], i["result"]) for i in items] == [
        (str(book.pk), "succeeded", {"changed": True, "after": {"shelf": "B"}}) for book in books
    ]
    rows = list(csv.reader(io.StringIO(b"".join(client.get(f"{MOUNT}{op_id}/items.csv").streaming_content).decode())))
    assert [row[:3] + row[-1:] for row in rows[1:]] == [
        [str(i), str(b.pk), "succeeded", "true"] for i, b in enumerate(books)
    ]


def test_sync_execution_answers_with_the_final_status(client_for, user, books):
    response = move(client_for(user), books[:2], execution="sync")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["successful_items"]) == ("completed", 2)
    assert shelves() == {books[0].title: "B", books[1].title: "B", books[2].title: "A"}


def test_a_missing_book_fails_its_item_only(client_for, user, books):
    body = {"ids": [books[0].pk, 999_999], "operation_type": "move_to_shelf", "operation_data": {"shelf": "C"}}
    status = client_for(user).post(MOUNT, {**body, "execution": "sync"}, format="json").json()
    assert (status["successful_items"], status["failed_items"]) == (1, 1)
    assert status["errors"][0]["item_id"] == "999999" and status["errors"][0]["error_code"] == "NOT_FOUND"
    assert Book.objects.get(pk=books[0].pk).shelf == "C"


def test_a_cancelled_operation_changes_nothing(client_for, user, books):
    client = client_for(user)
    op_id = move(client, books).json()["operation_id"]
    cancelled = client.post(f"{MOUNT}{op_id}/cancel/")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    work_off()
    assert set(shelves().values()) == {"A"}
    assert BulkOperation.objects.get().status == "cancelled"


def test_revert_puts_back_the_shelves_unless_a_book_moved_since(client_for, user, books):
    client = client_for(user)
    op_id = move(client, books).json()["operation_id"]
    work_off()
    Book.objects.filter(pk=books[2].pk).update(shelf="Z")  # moved by hand since
    reverted = client.post(f"{MOUNT}{op_id}/revert/", format="json")
    assert reverted.status_code == 202
    work_off()
    status = client.get(f"/api/v1/bulk-operations/{reverted.json()['operation_id']}/").json()
    assert (status["operation_type"], status["successful_items"], status["failed_items"]) == ("revert", 2, 1)
    assert status["errors"][0]["error_code"] == "CONFLICT"
    assert shelves() == {books[0].title: "A", books[1].title: "A", books[2].title: "Z"}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"ticket_ids": [1]}, "ticket_ids", "ticket_ids selects tickets, not books."),
        (
            {"ids": [1], "book_ids": [1]},
            "non_field_errors",
            "Give exactly one selection: ids (or ticket_ids / metric_ids / book_ids) or filter.",
        ),
        ({"filter": {"shelf": "A"}}, "filter", "books take no filter; give ids."),
        ({"book_ids": ["1"]}, "book_ids", "[0] '1' is not a valid id: expected an integer."),
    ],
)
def test_a_bad_selection_is_refused_and_nothing_is_stored(client_for, user, books, body, field, message):
    response = client_for(user).post(
        MOUNT, {**body, "operation_type": "move_to_shelf", "operation_data": {"shelf": "B"}}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["details"][field]) == ("VALIDATION_ERROR", [message])
    assert not BulkOperation.objects.exists()


def test_the_admin_action_starts_the_operation_from_the_registry(admin_client, books):
    changelist = admin_client.get("/admin/bookshelf/book/").content.decode()
    assert '<option value="bulk_move_to_shelf">Move to shelf…</option>' in changelist
    body = {
        "action": "bulk_move_to_shelf",
        "index": 0,
        "_selected_action": [b.pk for b in books[:2]],
        "select_across": 0,
    }
    response = admin_client.post("/admin/bookshelf/book/", {**body, "apply": "Start", "data-shelf": "D"})
    op = BulkOperation.objects.get()
    assert response["Location"] == f"/bulk-operations/{op.pk}/"
    work_off()
    assert shelves() == {books[0].title: "D", books[1].title: "D", books[2].title: "A"}


def test_the_schema_types_the_books_create_body():
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    body = schema["paths"][MOUNT]["post"]["requestBody"]["content"]["application/json"]["schema"]
    properties = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["properties"]
    assert {"ids", "book_ids"} <= set(properties) and not {"ticket_ids", "metric_ids"} & set(properties)
    assert properties["book_ids"]["items"] == {"type": "integer"}


def test_the_operation_page_counts_in_the_models_own_words(client, client_for, user, books):
    op_id = move(client_for(user), books[:2], execution="sync").json()["operation_id"]
    client.force_login(user)
    page = client.get(f"/bulk-operations/{op_id}/").content.decode()
    assert "2 books · partial mode" in page
