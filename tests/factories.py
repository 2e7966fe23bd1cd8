from collections import Counter

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from bulkops.models import BulkOperation, BulkOperationItem
from metrics.models import Metric, MetricPermission
from tickets.models import Category, Ticket

from .bookshelf.models import Book


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw")

    @factory.post_generation
    def perms(self, create, extracted, **kwargs):
        grant(self, extracted or ())


def grant(user, codenames):
    for codename in codenames:
        app, _, code = codename.partition(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=code))
    user.save()


class AgentFactory(UserFactory):
    """A user with `tickets.change_ticket`: sees and changes every ticket."""

    @factory.post_generation
    def perms(self, create, extracted, **kwargs):
        grant(self, extracted or ("tickets.change_ticket",))


class ApproverFactory(UserFactory):
    """A user with `bulkops.approve_bulkoperation`: approves or rejects other users' operations."""

    @factory.post_generation
    def perms(self, create, extracted, **kwargs):
        grant(self, extracted or ("bulkops.approve_bulkoperation",))


class StaffFactory(UserFactory):
    is_staff = True
    is_superuser = True


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"Category {n}")


class TicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Ticket

    title = factory.Sequence(lambda n: f"Ticket {n}")
    requester = factory.SubFactory(UserFactory)


class MetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Metric

    name = factory.Sequence(lambda n: f"Metric {n}")
    owner = factory.SubFactory(UserFactory)


class MetricPermissionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MetricPermission

    metric = factory.SubFactory(MetricFactory)
    user = factory.SubFactory(UserFactory)
    role = "can_edit"


class BulkOperationFactory(factory.django.DjangoModelFactory):
    """An operation in any state, without running it: for pages and the admin.
    `items=["succeeded", "failed", …]` adds one item per status, with counters to match."""

    class Meta:
        model = BulkOperation
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    resource_type = "tickets"
    operation_type = "update_status"
    operation_data = factory.LazyFunction(lambda: {"status": "resolved"})

    @factory.post_generation
    def items(self, create, extracted, **kwargs):
        if not extracted:
            return
        BulkOperationItem.objects.bulk_create(
            BulkOperationItem(
                operation=self,
                position=n,
                target_id=str(1000 + n),
                status=status,
                error_code="NOT_FOUND" if status == "failed" else "",
                error_message=f"tickets {1000 + n} not found" if status == "failed" else "",
            )
            for n, status in enumerate(extracted)
        )
        counts = Counter(extracted)
        self.total_items = len(extracted)
        self.successful_items, self.failed_items = counts["succeeded"], counts["failed"]
        self.skipped_items = counts["skipped"]
        self.processed_items = self.successful_items + self.failed_items
        self.save()


class BookFactory(factory.django.DjangoModelFactory):
    """The example resource's record (tests/bookshelf, docs/extending.md)."""

    class Meta:
        model = Book

    title = factory.Sequence(lambda n: f"Book {n}")
    shelf = "A"
