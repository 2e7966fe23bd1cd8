"""The pages in headless Chromium, against a real daphne and rq worker on the test database.

Screenshots go to docs/screenshots/ when BULKOPS_SCREENSHOTS=1 (README "Screenshots"),
else to the test's temporary directory.
"""

import json
import os
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from bulkops.models import BulkOperation
from tickets.models import Comment, Ticket

from . import servers
from .bulkops.helpers import approve_if_awaiting
from .factories import AgentFactory, StaffFactory, TicketFactory, UserFactory

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
FINISH_TIMEOUT = 30_000  # ms: an operation of a few thousand items, on a busy machine
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def server(django_db_setup):
    with servers.daphne() as url, servers.worker():
        yield url


@pytest.fixture
def browser(server, transactional_db, monkeypatch):
    # Playwright's sync API keeps an event loop running in this thread, which makes Django
    # refuse ORM calls here; none run concurrently with it, so that refusal can be lifted.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # Inside this block Django's connection is another one (Playwright runs us in a
            # context of its own); close it, or it keeps the test database from being dropped.
            connections.close_all()


def new_page(browser, server, **options):
    context = browser.new_context(base_url=server, viewport={"width": 1200, "height": 900}, **options)
    context.set_default_timeout(10_000)
    return context.new_page()


@pytest.fixture
def page(browser, server):
    return new_page(browser, server)


@pytest.fixture
def screenshot(tmp_path):
    folder = SCREENSHOTS if os.environ.get("BULKOPS_SCREENSHOTS") == "1" else tmp_path

    def take(page, name):
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=folder / f"{name}.png", full_page=True)

    return take


def log_in(page, user, path="/tickets/"):
    page.goto(path)
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def start(page, operation, fill=None):
    """From the list: choose the action, fill its form, check the count, start."""
    page.get_by_label("Action", exact=True).select_option(operation)
    page.get_by_role("button", name="Continue…").click()
    if fill:
        fill(page)
    page.get_by_role("button", name="Review…").click()
    count = page.locator("#confirm-count").inner_text()
    page.get_by_role("button", name=f"Start on {count}").click()
    expect(page.locator("[data-operation]")).to_be_visible()
    return count


def finished(page, status="Completed"):
    expect(page.locator("[data-operation] .status")).to_have_text(status, timeout=FINISH_TIMEOUT)
    return BulkOperation.objects.get(pk=page.locator("[data-operation]").get_attribute("data-operation"))


def received(page):
    """The WebSocket messages the page receives, as they come."""
    messages = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: messages.append(json.loads(frame))))
    return messages


def test_an_agent_changes_ticked_tickets_and_watches_the_bar_reach_100(page, screenshot):
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(4, status="open")
    closed = TicketFactory(status="closed")  # closed is final: this one fails
    messages = received(page)
    log_in(page, agent)
    for ticket in [*tickets[:3], closed]:
        page.get_by_label(ticket.title, exact=True).check()
    expect(page.locator("#selected-count")).to_have_text("4 selected")
    count = start(page, "update_status", lambda form: form.get_by_label("Status").select_option("resolved"))
    assert count == "4 tickets"
    op = finished(page, "Partial")
    expect(page.locator("[data-operation] progress")).to_have_attribute("value", "100")
    expect(page.locator('[data-field="successful_items"]')).to_have_text("3")
    expect(page.get_by_role("cell", name="INVALID_TRANSITION")).to_be_visible()
    expect(page.get_by_role("button", name="Retry failed items")).to_be_visible()
    assert messages and messages[0]["type"] == "snapshot"  # live over the WebSocket, not by polling
    assert (op.successful_items, op.failed_items) == (3, 1)
    assert [t.status for t in Ticket.objects.filter(pk__in=[t.pk for t in tickets]).order_by("pk")] == [
        "resolved", "resolved", "resolved", "open",
    ]  # fmt: skip
    screenshot(page, "progress")


def test_select_all_matching_changes_every_page_of_the_filter(page):
    agent = AgentFactory()
    high = TicketFactory.create_batch(60, priority="high")
    TicketFactory.create_batch(3, priority="low")
    log_in(page, agent, "/tickets/?priority=high")
    page.get_by_label("Select all 60 tickets matching the filter, not only this page").check()
    count = start(page, "set_priority", lambda form: form.get_by_label("Priority").select_option("urgent"))
    assert count == "60 tickets"
    finished(page)
    assert Ticket.objects.filter(priority="urgent").count() == len(high)


def test_a_large_operation_can_be_cancelled_from_its_page(page):
    agent = AgentFactory()
    requester = UserFactory()
    Ticket.objects.bulk_create(Ticket(title=f"Bulk {n}", requester=requester) for n in range(5000))
    log_in(page, agent)
    page.get_by_label("Select all 5000 tickets matching the filter, not only this page").check()
    start(page, "add_comment", lambda form: form.get_by_label("Body").fill("We are on it."))
    expect(page.locator('[data-field="processed_items"]')).not_to_have_text("0", timeout=FINISH_TIMEOUT)
    page.get_by_role("button", name="Cancel operation").click()
    op = finished(page, "Cancelled")
    assert 0 < op.skipped_items < op.total_items == 5000
    assert op.successful_items + op.failed_items + op.skipped_items == 5000
    assert Comment.objects.count() == op.successful_items


def test_the_page_falls_back_to_polling_when_the_websocket_is_refused(page):
    agent = AgentFactory()
    ticket = TicketFactory()
    page.route_web_socket("**/ws/**", lambda socket: socket.close())
    log_in(page, agent)
    page.get_by_label(ticket.title, exact=True).check()
    start(page, "set_priority", lambda form: form.get_by_label("Priority").select_option("low"))
    finished(page)
    expect(page.locator("[data-operation] progress")).to_have_attribute("value", "100")


def test_without_javascript_the_page_refreshes_itself_until_the_end(browser, server):
    page = new_page(browser, server, java_script_enabled=False)
    agent = AgentFactory()
    ticket = TicketFactory()
    log_in(page, agent)
    page.get_by_label(ticket.title, exact=True).check()
    start(page, "add_comment", lambda form: form.get_by_label("Body").fill("Noted."))
    expect(page.get_by_role("link", name="Refresh")).to_be_visible()
    finished(page)  # reloaded by <meta http-equiv="refresh"> alone
    expect(page.get_by_role("link", name="Refresh")).to_have_count(0)


def test_staff_run_an_admin_action_through_its_intermediate_form(page, screenshot):
    staff = StaffFactory()
    tickets = TicketFactory.create_batch(4, status="open")
    log_in(page, staff)
    page.goto("/admin/tickets/ticket/")
    for ticket in tickets[:2]:
        page.locator(f'input[name="_selected_action"][value="{ticket.pk}"]').check()
    page.locator('select[name="action"]').select_option("bulk_update_status")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#bulk-count")).to_have_text("2 tickets")
    page.get_by_label("Status").select_option("closed")
    screenshot(page, "admin-action")
    page.get_by_role("button", name="Start on 2").click()
    op = finished(page)
    assert op.user == staff and op.total_items == 2
    assert Ticket.objects.filter(status="closed").count() == 2


def test_start_back_and_start_again_adds_the_comment_once(page):
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(2)
    log_in(page, agent)
    for ticket in tickets:
        page.get_by_label(ticket.title, exact=True).check()
    start(page, "add_comment", lambda form: form.get_by_label("Body").fill("Once."))
    first = finished(page)
    page.go_back()
    page.get_by_role("button", name="Start on 2 tickets").click()
    expect(page.get_by_text("This form was submitted before")).to_be_visible()
    assert finished(page).pk == first.pk
    assert BulkOperation.objects.count() == 1
    assert [ticket.comments.count() for ticket in tickets] == [1, 1]


def test_revert_is_previewed_then_started_and_then_no_longer_offered(page, screenshot):
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(3, status="open")
    log_in(page, agent)
    for ticket in tickets:
        page.get_by_label(ticket.title, exact=True).check()
    start(page, "update_status", lambda form: form.get_by_label("Status").select_option("pending"))
    original = finished(page)
    Ticket.objects.filter(pk=tickets[0].pk).update(status="closed")  # changed since: the revert leaves it
    page.get_by_role("button", name="Preview revert…").click()
    preview = finished(page, "Partial")
    assert (preview.dry_run, str(preview.reverts_id)) == (True, str(original.pk))
    expect(page.locator("#preview-summary")).to_contain_text("2 tickets would be restored; 1 would not")
    expect(page.get_by_role("cell", name="CONFLICT")).to_be_visible()
    assert [t.status for t in Ticket.objects.order_by("pk")] == ["closed", "pending", "pending"]  # a preview
    screenshot(page, "revert-preview")
    page.get_by_role("button", name="Start revert").click()
    revert = finished(page, "Partial")
    assert (revert.dry_run, revert.successful_items, revert.failed_items) == (False, 2, 1)
    assert [t.status for t in Ticket.objects.order_by("pk")] == ["closed", "open", "open"]
    page.goto(f"/bulk-operations/{original.pk}/")
    expect(page.get_by_role("link", name="revert (Partial)")).to_be_visible()
    expect(page.get_by_role("button", name="Preview revert…")).to_have_count(0)


def test_retry_offers_a_choice_of_failures_and_takes_the_ones_ticked(page, screenshot):
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(2, status="open")
    closed = TicketFactory(status="closed")
    log_in(page, agent)
    for ticket in [*tickets, closed]:
        page.get_by_label(ticket.title, exact=True).check()
    start(page, "update_status", lambda form: form.get_by_label("Status").select_option("resolved"))
    original = finished(page, "Partial")
    choice = page.get_by_label("INVALID_TRANSITION (1 item)")
    expect(choice).not_to_be_checked()  # it fails again unless its cause is fixed
    page.get_by_role("button", name="Retry failed items").click()
    expect(page.get_by_role("status")).to_have_text("Choose which failures to retry.")
    assert not BulkOperation.objects.filter(retry_of=original).exists()
    Ticket.objects.filter(pk=closed.pk).update(status="open")  # the cause, fixed
    page.get_by_label("INVALID_TRANSITION (1 item)").check()
    screenshot(page, "retry-choice")
    page.get_by_role("button", name="Retry failed items").click()
    retry = finished(page)
    assert (str(retry.retry_of_id), retry.total_items) == (str(original.pk), 1)
    assert Ticket.objects.get(pk=closed.pk).status == "resolved"


def fits(page, width=390):
    """Whether the page is no wider than the screen: nothing to scroll sideways."""
    return page.evaluate("document.documentElement.scrollWidth") <= width


def test_the_pages_fit_a_390_px_phone(browser, server, screenshot):
    page = new_page(browser, server)
    page.set_viewport_size({"width": 390, "height": 844})
    agent = AgentFactory(perms=["tickets.change_ticket", "tickets.delete_ticket"])
    tickets = [TicketFactory(title=f"The printer on the third floor prints blank pages again {n}") for n in range(3)]
    log_in(page, agent)
    assert fits(page)
    screenshot(page, "phone-tickets")
    page.get_by_label(tickets[0].title, exact=True).check()
    page.get_by_label("Action", exact=True).select_option("delete")
    page.get_by_role("button", name="Continue…").click()
    page.get_by_role("button", name="Review…").click()
    expect(page.locator(".danger-zone")).to_contain_text("1 ticket will be deleted.")
    assert fits(page)
    screenshot(page, "phone-delete-confirm")
    page.get_by_role("button", name="Delete 1 ticket").click()
    op = finished(page, status="Awaiting Approval")  # a delete by a non-staff user (SPEC §13)
    approve_if_awaiting(op.pk)  # another person approves it: the page follows, live
    finished(page)
    assert fits(page)
    assert Ticket.objects.get(pk=tickets[0].pk).is_deleted


def test_a_requester_is_offered_only_the_bulk_action_a_requester_may_take(page):
    requester = UserFactory()
    TicketFactory(requester=requester)
    log_in(page, requester)
    options = page.get_by_label("Action", exact=True).locator("option")
    expect(options).to_have_text(["— choose —", "Add comment"])


def test_an_agent_imports_a_file_through_its_preview(page, screenshot):
    agent = AgentFactory()
    TicketFactory(external_id="EXT-1", title="Old title")
    log_in(page, agent)
    page.get_by_role("link", name="Import from a file…").click()
    content = b"external_id,title,priority\nEXT-1,New title,high\nEXT-2,Brand new,low\nEXT-3,Bad,urgentest\n"
    page.get_by_label("File").set_input_files({"name": "tickets.csv", "mimeType": "text/csv", "buffer": content})
    page.get_by_label("Match records on").select_option("external_id")
    page.get_by_role("button", name="Preview…").click()
    summary = page.locator("#import-summary")
    expect(summary).to_have_text(
        "1 ticket would be created, 1 updated; 1 row would fail (the first are listed below). "
        "Nothing has been written yet.",
        timeout=FINISH_TIMEOUT,
    )
    expect(page.get_by_role("cell", name="VALIDATION_ERROR")).to_be_visible()
    screenshot(page, "import-preview")
    assert Ticket.objects.get(external_id="EXT-1").title == "Old title"
    page.get_by_role("button", name="Start import").click()
    finished(page, "Partial")
    expect(page.locator('[data-field="successful_items"]')).to_have_text("2")
    assert Ticket.objects.get(external_id="EXT-1").title == "New title"
    assert Ticket.objects.get(external_id="EXT-2").priority == "low"
