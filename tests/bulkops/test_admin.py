"""The BulkOperation admin: filters, a read-only detail with paginated items, a cancel action."""

import re

import pytest
from django.test import Client

from ..factories import BulkOperationFactory, UserFactory

CHANGELIST = "/admin/bulkops/bulkoperation/"

pytestmark = pytest.mark.django_db


def test_the_changelist_lists_operations_with_filters(admin_client):
    BulkOperationFactory(status="completed")
    BulkOperationFactory(status="pending")
    content = admin_client.get(CHANGELIST).content.decode()
    assert "2 bulk operations" in content
    assert "?status__exact=completed" in content
    assert "?resource_type=tickets" in content
    assert "1 bulk operation" in admin_client.get(f"{CHANGELIST}?status__exact=completed").content.decode()


def test_the_detail_is_read_only_and_links_to_the_progress_page(admin_client):
    op = BulkOperationFactory(items=["succeeded", "failed"])
    content = admin_client.get(f"{CHANGELIST}{op.pk}/change/").content.decode()
    assert f'href="/bulk-operations/{op.pk}/"' in content
    assert f'href="/api/v1/bulk-operations/{op.pk}/items.csv"' in content
    assert 'name="status"' not in content
    assert 'type="submit" value="Save"' not in content
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403


def targets(content):
    return [int(t) for t in re.findall(r'field-target_id">\s*<p>(\d+)</p>', content)]


def test_the_items_inline_shows_one_page_of_100_items(admin_client):
    op = BulkOperationFactory(items=["succeeded"] * 250)
    first = admin_client.get(f"{CHANGELIST}{op.pk}/change/").content.decode()
    assert "Items 1–100 of 250." in first
    assert targets(first) == list(range(1000, 1100))
    assert "?items_page=2" in first
    last = admin_client.get(f"{CHANGELIST}{op.pk}/change/?items_page=3").content.decode()
    assert "Items 201–250 of 250." in last
    assert targets(last) == list(range(1200, 1250))


def test_a_nonsense_items_page_shows_the_first(admin_client):
    op = BulkOperationFactory(items=["succeeded"] * 3)
    assert "Items 1–3 of 3." in admin_client.get(f"{CHANGELIST}{op.pk}/change/?items_page=x").content.decode()


def test_the_cancel_action_cancels_the_active_ones_and_reports_the_rest(admin_client):
    pending = BulkOperationFactory(items=["pending"] * 2)
    done = BulkOperationFactory(status="completed", items=["succeeded"])
    response = admin_client.post(
        CHANGELIST, {"action": "cancel_operations", "index": 0, "_selected_action": [pending.pk, done.pk]}, follow=True
    )
    content = response.content.decode()
    pending.refresh_from_db()
    assert pending.status == "cancelled"
    assert "Cancelled 1 operation." in content
    assert "1 had already finished." in content


def test_the_detail_page_cancels_its_operation(admin_client):
    op = BulkOperationFactory(items=["pending"])
    url = f"{CHANGELIST}{op.pk}/change/"
    assert '<option value="cancel_operations">Cancel this operation</option>' in admin_client.get(url).content.decode()
    response = admin_client.post(
        url, {"CHANGE_FORM-action": "cancel_operations", "index": 0, "_selected_action": op.pk}
    )
    assert response["Location"] == url
    op.refresh_from_db()
    assert op.status == "cancelled"


def test_the_admin_is_for_staff_only():
    client = Client()
    client.force_login(UserFactory())
    assert client.get(CHANGELIST)["Location"].startswith("/admin/login/")
