"""/api/v1/categories/: everyone reads, agents write, a category in use stays."""

import pytest

from bulkops import errors
from tickets import services
from tickets.models import Category

from ..factories import CategoryFactory, StaffFactory, TicketFactory, UserFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/categories/"


def test_any_user_lists_categories_by_name(client_for, user):
    CategoryFactory(name="Network")
    CategoryFactory(name="Billing")
    body = client_for(user).get(URL).json()
    assert body["count"] == 2
    assert [c["name"] for c in body["results"]] == ["Billing", "Network"]
    assert set(body["results"][0]) == {"id", "name", "created_at"}


def test_any_user_retrieves_a_category_with_fields(client_for, user):
    category = CategoryFactory(name="Hardware")
    assert client_for(user).get(f"{URL}{category.pk}/", {"fields": "name"}).json() == {"name": "Hardware"}


@pytest.mark.parametrize("make_user", [lambda: UserFactory(perms=["tickets.change_ticket"]), StaffFactory])
def test_agents_and_staff_create_rename_and_delete_categories(client_for, make_user):
    client = client_for(make_user())
    response = client.post(URL, {"name": "Facilities"}, format="json")
    assert response.status_code == 201
    category_id = response.json()["id"]
    response = client.patch(f"{URL}{category_id}/", {"name": "Buildings"}, format="json")
    assert response.status_code == 200
    assert Category.objects.get(pk=category_id).name == "Buildings"
    assert client.delete(f"{URL}{category_id}/").status_code == 204
    assert not Category.objects.exists()


def test_a_user_without_agent_permission_may_not_write_categories(client_for, user):
    category = CategoryFactory(name="Billing")
    client = client_for(user)
    for response in [
        client.post(URL, {"name": "New"}, format="json"),
        client.patch(f"{URL}{category.pk}/", {"name": "Renamed"}, format="json"),
        client.delete(f"{URL}{category.pk}/"),
    ]:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "PERMISSION_DENIED"
    assert list(Category.objects.values_list("name", flat=True)) == ["Billing"]


def test_a_category_in_use_cannot_be_deleted(client_for, agent):
    category = CategoryFactory(name="Hardware")
    TicketFactory(category=category, is_deleted=True)
    response = client_for(agent).delete(f"{URL}{category.pk}/")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "CONFLICT",
        "message": "Category 'Hardware' is set on 1 tickets; change them first",
        "details": None,
    }
    assert Category.objects.filter(pk=category.pk).exists()


def test_category_names_are_unique(client_for, agent):
    CategoryFactory(name="Billing")
    response = client_for(agent).post(URL, {"name": "Billing"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "name: A category with this name already exists."


@pytest.mark.parametrize("data", [{}, {"name": ""}, {"name": 5}, {"name": "x" * 101}, {"name": "ok", "colour": "red"}])
def test_bad_category_input_is_400(client_for, agent, data):
    response = client_for(agent).post(URL, data, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert not Category.objects.exists()


def test_an_unknown_category_is_404(client_for, agent):
    assert client_for(agent).get(f"{URL}987654/").status_code == 404
    assert client_for(agent).delete(f"{URL}987654/").status_code == 404


def test_anonymous_users_get_401(client_for):
    response = client_for(None).get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "NOT_AUTHENTICATED"


# --- tickets.services: the one place of the agents-only rule ---------------------------------


def test_the_services_let_only_agents_change_categories(user):
    category = CategoryFactory(name="Billing")
    ctx = services.Context(actor=user)
    for attempt in [
        lambda: services.create_category(ctx, {"name": "New"}),
        lambda: services.update_category(category, ctx, {"name": "Renamed"}),
        lambda: services.delete_category(category, ctx),
    ]:
        with pytest.raises(errors.PermissionDenied, match="Insufficient permissions to change categories"):
            attempt()
    assert list(Category.objects.values_list("name", flat=True)) == ["Billing"]


def test_the_api_refuses_a_non_agent_with_the_services_message(client_for, user):
    response = client_for(user).post(URL, {"name": "New"}, format="json")
    assert response.json()["error"] == {
        "code": "PERMISSION_DENIED",
        "message": "Insufficient permissions to change categories",
        "details": None,
    }


def test_a_batch_refuses_a_non_agent_with_the_same_message(client_for, user):
    step = {"method": "POST", "resource_type": "categories", "data": {"name": "New"}}
    result = client_for(user).post("/api/v1/batch/", {"operations": [step]}, format="json").json()["results"][0]
    assert (result["success"], result["error"]["message"]) == (False, "Insufficient permissions to change categories")
    assert not Category.objects.exists()
