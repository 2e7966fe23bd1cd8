"""Demo data: users admin / agent / requester, categories, tickets and shared metrics.

Idempotent: it tops up to the numbers asked for, so a second run adds nothing. Rows are
written with PostgreSQL's COPY (100,000 tickets in a few seconds); other databases (the
SQLite fallback of `make run`) go through `bulk_create`.
"""

import os
import random
import time
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from metrics.models import Metric, MetricPermission, Role, Verification
from tickets.models import Category, Priority, Status, Ticket

# username: (is_staff and is_superuser, ticket permissions)
USERS = {
    "admin": (True, ()),
    "agent": (False, ("change_ticket", "delete_ticket")),
    "requester": (False, ()),
}
CATEGORIES = ["Accounts", "Billing", "Facilities", "Hardware", "Network", "Software"]
SUBJECTS = ["Printer", "Laptop", "VPN", "Email", "Invoice", "Badge", "Wi-Fi", "Monitor", "Password", "Payroll"]
PROBLEMS = ["does not work", "is slow", "shows an error", "needs replacing", "keeps disconnecting", "was charged twice"]
PLACES = [
    "on floor 2",
    "in the Berlin office",
    "at reception",
    "for the sales team",
    "since Monday",
    "after the update",
]
STATUS_WEIGHTS = dict(zip(Status.values, [40, 20, 15, 15, 10], strict=True))  # open … closed
METRICS = ["Revenue", "Active users", "Churn rate", "Ticket backlog", "First response time", "Conversion rate"]
# The agent's role cycles through these so that the demo shows every level of sharing.
AGENT_ROLES = [Role.CAN_EDIT.value, Role.FULL_ACCESS.value, Role.CAN_VIEW.value]
TICKET_COLUMNS = [
    "title", "description", "status", "priority", "category_id", "requester_id", "assignee_id",
    "version", "is_deleted", "created_at", "updated_at",
]  # fmt: skip
METRIC_COLUMNS = ["id", "name", "description", "definition", "verification", "owner_id", "version"]
METRIC_COLUMNS += ["created_at", "updated_at"]
PERMISSION_COLUMNS = ["metric_id", "user_id", "role", "created_at"]


def demo_password(username):
    return os.environ.get("BULKOPS_DEMO_PASSWORD") or username


def copy_rows(model, columns, rows):
    """Insert `rows` (tuples in `columns` order): COPY on PostgreSQL, bulk_create elsewhere."""
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**dict(zip(columns, row, strict=True))) for row in rows], batch_size=500)
        return
    quote = connection.ops.quote_name
    names = ", ".join(quote(model._meta.get_field(name).column) for name in columns)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {quote(model._meta.db_table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def free_name(name, taken):
    number = 2
    candidate = name
    while candidate in taken:
        candidate, number = f"{name} ({number})", number + 1
    return candidate


class Command(BaseCommand):
    help = "Create demo users, categories, tickets and metrics (tops up to --tickets / --metrics)."

    def add_arguments(self, parser):
        parser.add_argument("--tickets", type=int, default=200, help="how many tickets there should be (200)")
        parser.add_argument("--metrics", type=int, default=50, help="how many metrics there should be (50)")

    def handle(self, *args, tickets, metrics, **options):
        if tickets < 0 or metrics < 0:
            raise CommandError("--tickets and --metrics must be 0 or more")
        started = time.monotonic()
        with transaction.atomic():
            users = self.seed_users()
            categories = self.seed_categories()
            added_tickets = self.seed_tickets(tickets, users, categories)
            added_metrics = self.seed_metrics(metrics, users)
        self.stdout.write(
            f"Added {added_tickets} tickets (now {Ticket.objects.count()}) and {added_metrics} metrics "
            f"(now {Metric.objects.count()}) in {time.monotonic() - started:.1f} s."
        )

    def seed_users(self):
        users = {}
        for username, (staff, codenames) in USERS.items():
            user, created = get_user_model().objects.get_or_create(
                username=username, defaults={"is_staff": staff, "is_superuser": staff}
            )
            if created:
                user.set_password(demo_password(username))
                user.save(update_fields=["password"])
                user.user_permissions.add(
                    *Permission.objects.filter(content_type__app_label="tickets", codename__in=codenames)
                )
            # An existing user keeps the password it has: checking it would cost a second per user.
            password = demo_password(username) if created else f"{demo_password(username)} (unless changed)"
            role = "staff, superuser" if staff else ", ".join(f"tickets.{c}" for c in codenames) or "no permissions"
            self.stdout.write(f"User {username:<10} password {password:<24} {role}")
            users[username] = user
        return users

    def seed_categories(self):
        Category.objects.bulk_create([Category(name=name) for name in CATEGORIES], ignore_conflicts=True)
        return list(Category.objects.filter(name__in=CATEGORIES).values_list("pk", flat=True))

    def seed_tickets(self, wanted, users, categories):
        existing = Ticket.objects.count()
        missing = max(wanted - existing, 0)
        rng = random.Random(existing)
        now = timezone.now()
        requesters = [users["requester"].pk, users["agent"].pk, users["admin"].pk]
        statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
        rows = []
        for number in range(existing + 1, existing + missing + 1):
            subject = rng.choice(SUBJECTS)
            title = f"{subject} {rng.choice(PROBLEMS)} {rng.choice(PLACES)}"
            created = now - timedelta(seconds=rng.randrange(90 * 86400))
            rows.append(
                (
                    title,
                    f"Demo ticket {number}: {title.lower()}. Reported through the help desk.",
                    rng.choices(statuses, weights)[0],
                    rng.choice(Priority.values),
                    rng.choice(categories + [None]),
                    requesters[number % len(requesters)],
                    users["agent"].pk if rng.random() < 0.5 else None,
                    1,
                    False,
                    created,
                    created,
                )
            )
        copy_rows(Ticket, TICKET_COLUMNS, rows)
        return missing

    def seed_metrics(self, wanted, users):
        existing = Metric.objects.count()
        missing = max(wanted - existing, 0)
        rng = random.Random(existing)
        now = timezone.now()
        metrics, shares = [], []
        # A name is unique per owner: one admin already has (a metric removed since renumbers
        # the rest) gets " (2)", " (3)" … as the migration that made names unique did.
        taken = set(Metric.objects.filter(owner=users["admin"]).values_list("name", flat=True))
        for number in range(existing + 1, existing + missing + 1):
            metric_id = uuid.uuid4()
            name = free_name(f"{rng.choice(METRICS)} #{number}", taken)
            taken.add(name)
            metrics.append(
                (
                    metric_id,
                    name,
                    f"Demo metric {number}",
                    f"SELECT count(*) FROM events WHERE metric = {number}",
                    rng.choice(Verification.values),
                    users["admin"].pk,
                    1,
                    now,
                    now,
                )
            )
            shares.append((metric_id, users["agent"].pk, AGENT_ROLES[number % len(AGENT_ROLES)], now))
            if number % 2:
                shares.append((metric_id, users["requester"].pk, Role.CAN_VIEW.value, now))
        copy_rows(Metric, METRIC_COLUMNS, metrics)
        copy_rows(MetricPermission, PERMISSION_COLUMNS, shares)
        return missing
