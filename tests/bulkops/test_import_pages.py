"""The import pages (SPEC §12): upload, the preview on the operation page, Start, progress."""

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from bulkops import imports, registry
from bulkops.models import BulkOperation
from metrics.models import Metric
from tickets.models import Ticket

from ..factories import AgentFactory, StaffFactory, TicketFactory
from .helpers import hidden_inputs, work_off


def upload(client, path, content, **fields):
    page = client.get(path)
    assert page.status_code == 200
    data = {**hidden_inputs(page, 'enctype="multipart/form-data"'), "action": "upsert", "match_on": "id", **fields}
    data["file"] = io.BytesIO(content)
    data["file"].name = "rows.csv"
    return client.post(path, data)


@pytest.mark.django_db(transaction=True)
def test_an_upload_opens_its_preview_and_start_imports_the_same_rows_once(client):
    agent = AgentFactory()
    client.force_login(agent)
    TicketFactory(external_id="A", title="Old")
    response = upload(client, "/tickets/import/", b"external_id,title\nA,New\nB,Made\nC,\n", match_on="external_id")
    preview = BulkOperation.objects.get()
    assert (response.status_code, response["Location"]) == (302, f"/bulk-operations/{preview.pk}/")
    work_off()
    page = client.get(response["Location"]).content.decode()
    assert "1 ticket would be created, 1 updated; 1 row would fail" in page
    assert "title: This field is required." in page  # the first failed rows, with their messages
    start = hidden_inputs(client.get(response["Location"]), "start-import")
    first = client.post(f"/bulk-operations/{preview.pk}/start-import/", start)
    again = client.post(f"/bulk-operations/{preview.pk}/start-import/", start)  # a resubmit starts nothing new
    op = BulkOperation.objects.exclude(pk=preview.pk).get()
    assert first["Location"] == again["Location"] == f"/bulk-operations/{op.pk}/"
    assert (op.dry_run, op.total_items, op.failed_items) == (False, 3, 0)
    work_off()
    op.refresh_from_db()
    assert (op.status, op.created_items, op.updated_items, op.failed_items) == ("partial", 1, 1, 1)
    assert sorted(Ticket.objects.values_list("external_id", "title")) == [("A", "New"), ("B", "Made")]


@pytest.mark.django_db
def test_a_refused_file_shows_why_on_the_form(client):
    client.force_login(AgentFactory())
    response = upload(client, "/tickets/import/", b"title,colour\nA,red\n")
    assert response.status_code == 200
    assert "unknown column(s): colour" in response.content.decode()
    assert BulkOperation.objects.count() == 0


@pytest.mark.django_db
def test_the_metric_changelist_links_to_the_metric_import(client):
    client.force_login(StaffFactory())
    assert 'href="/metrics/import/"' in client.get("/admin/metrics/metric/").content.decode()
    response = upload(client, "/metrics/import/", b"name,description\nRevenue,money\n", match_on="name")
    assert response.status_code == 302
    assert BulkOperation.objects.get().resource_type == "metrics"
    assert Metric.objects.count() == 0  # a preview writes nothing


@pytest.mark.django_db(transaction=True)
def test_the_import_a_preview_starts_keeps_the_previews_start_time():
    agent = AgentFactory()
    # Asked for an hour ago (run_at was ahead then), run at that time, looked at now.
    run_at = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    options = imports.Options(resource_type="tickets", action="create", dry_run=True, run_at=run_at)
    definition = registry.get("tickets", imports.IMPORT)
    preview, _ = imports.start_import(agent, definition, options, [{"title": "Later", "priority": "high"}])
    work_off()
    preview.refresh_from_db()
    op, _ = imports.start_from_preview(agent, preview)
    assert (op.run_at, op.status, op.dry_run) == (run_at, "pending", False)  # its time has come: it starts at once
    work_off()
    assert list(Ticket.objects.values_list("title", flat=True)) == ["Later"]
