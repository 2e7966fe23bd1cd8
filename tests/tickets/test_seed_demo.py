"""manage.py seed_demo: demo users, categories, tickets and shared metrics, idempotently."""

import random
import time
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command

from metrics.models import Metric, MetricPermission
from tickets.management.commands.seed_demo import METRICS
from tickets.models import Category, Ticket

pytestmark = pytest.mark.django_db


def seed(*args):
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_it_creates_the_three_demo_users_and_prints_their_passwords():
    out = seed("--tickets", "0", "--metrics", "0")
    admin = authenticate(username="admin", password="admin")
    agent = authenticate(username="agent", password="agent")
    requester = authenticate(username="requester", password="requester")
    assert admin.is_staff and admin.is_superuser
    assert agent.has_perm("tickets.change_ticket") and agent.has_perm("tickets.delete_ticket")
    assert not agent.is_staff
    assert not requester.is_staff and not requester.get_all_permissions()
    for username in ["admin", "agent", "requester"]:
        assert f"User {username}" in out and f"password {username}" in out


def test_the_demo_password_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("BULKOPS_DEMO_PASSWORD", "s3cret-demo")
    out = seed("--tickets", "0", "--metrics", "0")
    assert authenticate(username="agent", password="s3cret-demo")
    assert "password s3cret-demo" in out


def test_it_creates_categories_tickets_and_metrics_with_the_defaults():
    out = seed()
    assert Category.objects.count() == 6
    assert Ticket.objects.count() == 200
    assert Metric.objects.count() == 50
    assert "Added 200 tickets (now 200) and 50 metrics (now 50)" in out


def test_the_tickets_are_varied_and_valid():
    seed("--tickets", "300", "--metrics", "0")
    tickets = Ticket.objects.all()
    assert tickets.values("status").distinct().count() == 5
    assert tickets.values("priority").distinct().count() == 4
    assert tickets.filter(category__isnull=False).exists() and tickets.filter(category__isnull=True).exists()
    assert tickets.filter(assignee__username="agent").exists() and tickets.filter(assignee__isnull=True).exists()
    assert set(tickets.values_list("version", "is_deleted").distinct()) == {(1, False)}
    assert tickets.filter(requester__username="requester").count() == 100
    assert tickets.filter(title__icontains="printer").exists()


def test_the_metrics_are_owned_by_admin_and_shared_with_agent_and_requester():
    seed("--tickets", "0", "--metrics", "6")
    assert set(Metric.objects.values_list("owner__username", flat=True)) == {"admin"}
    agent_roles = MetricPermission.objects.filter(user__username="agent").values_list("role", flat=True)
    assert sorted(agent_roles) == ["can_edit", "can_edit", "can_view", "can_view", "full_access", "full_access"]
    requester_roles = MetricPermission.objects.filter(user__username="requester").values_list("role", flat=True)
    assert list(requester_roles) == ["can_view"] * 3


def test_the_demo_users_see_what_they_should(client_for):
    seed("--tickets", "30", "--metrics", "6")
    users = get_user_model().objects
    requester, agent = users.get(username="requester"), users.get(username="agent")
    assert client_for(agent).get("/api/v1/tickets/").json()["count"] == 30
    assert client_for(requester).get("/api/v1/tickets/").json()["count"] == 10
    assert client_for(requester).get("/api/v1/metrics/").json()["count"] == 3


def test_running_twice_adds_nothing():
    seed("--tickets", "20", "--metrics", "5")
    out = seed("--tickets", "20", "--metrics", "5")
    assert (Ticket.objects.count(), Metric.objects.count(), MetricPermission.objects.count()) == (20, 5, 8)
    assert (get_user_model().objects.count(), Category.objects.count()) == (3, 6)
    assert "Added 0 tickets (now 20) and 0 metrics (now 5)" in out
    assert "password agent (unless changed)" in out


def test_a_second_run_keeps_a_changed_password():
    seed("--tickets", "0", "--metrics", "0")
    agent = get_user_model().objects.get(username="agent")
    agent.set_password("mine")
    agent.save()
    seed("--tickets", "0", "--metrics", "0")
    assert authenticate(username="agent", password="mine")


def test_it_tops_up_to_the_number_asked_for():
    seed("--tickets", "10", "--metrics", "2")
    out = seed("--tickets", "25", "--metrics", "3")
    assert (Ticket.objects.count(), Metric.objects.count()) == (25, 3)
    assert "Added 15 tickets (now 25) and 1 metrics (now 3)" in out


def test_asking_for_fewer_than_there_are_removes_nothing():
    seed("--tickets", "10", "--metrics", "2")
    assert "Added 0 tickets (now 10) and 0 metrics (now 2)" in seed("--tickets", "5", "--metrics", "1")


def test_a_negative_count_is_refused():
    with pytest.raises(CommandError, match="0 or more"):
        seed("--tickets", "-1")


def test_a_hundred_thousand_tickets_take_well_under_a_minute():
    started = time.monotonic()
    seed("--tickets", "100000", "--metrics", "0")
    assert Ticket.objects.count() == 100_000
    assert time.monotonic() - started < 60


def test_a_name_admin_already_has_gets_a_number_so_names_stay_unique_per_owner():
    seed("--tickets", "0", "--metrics", "0")
    admin = get_user_model().objects.get(username="admin")
    # One metric there, so the next one seeded is number 2, named as Random(1) picks.
    taken = Metric.objects.create(owner=admin, name=f"{random.Random(1).choice(METRICS)} #2")
    seed("--tickets", "0", "--metrics", "2")
    assert sorted(Metric.objects.values_list("name", flat=True)) == sorted([taken.name, f"{taken.name} (2)"])
