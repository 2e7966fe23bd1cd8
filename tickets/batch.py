"""What the batch endpoints (bulkops/batch.py) do with tickets and categories: the single
endpoints' serializers and services, one locked record at a time."""

from bulkops import errors
from bulkops.batch import Handler, register_handler, validated

from . import services
from .api.serializers import CategorySerializer, TicketCreateSerializer, TicketPatchSerializer, TicketSerializer
from .models import Category, Ticket, is_agent


@register_handler
class TicketHandler(Handler):
    resource_type, label, serializer_class = "tickets", "Ticket", TicketSerializer

    def visible(self, user):
        return Ticket.objects.visible_to(user)

    def lock(self, user, ids):
        return services.lock(user, ids)

    def create(self, ctx, data):
        return self.represent(
            services.create(ctx, validated(TicketCreateSerializer(data=data, context={"viewer": ctx.actor})))
        )

    def update(self, ticket, ctx, data):
        changes = dict(validated(TicketPatchSerializer(data=data, context={"viewer": ctx.actor})))
        version = changes.pop("version", None)
        change = services.apply_update(ticket, ctx, changes, expected_version=version)
        services.save([change])
        return self.represent(change.ticket)

    def delete(self, ticket, ctx):
        services.save([services.apply_delete(ticket, ctx)])


@register_handler
class CategoryHandler(Handler):
    """Everyone reads categories; agents write them (the single endpoints' IsAgentOrReadOnly)."""

    resource_type, label, serializer_class = "categories", "Category", CategorySerializer

    def visible(self, user):
        return Category.objects.all()

    def lock(self, user, ids):
        return {c.pk: c for c in Category.objects.select_for_update().filter(pk__in=ids).order_by("pk")}

    def create(self, ctx, data):
        return self.write(ctx, CategorySerializer(data=data))

    def update(self, category, ctx, data):
        return self.write(ctx, CategorySerializer(category, data=data, partial=True))

    def delete(self, category, ctx):
        self.check_agent(ctx)
        services.delete_category(category)

    def write(self, ctx, serializer):
        self.check_agent(ctx)
        validated(serializer)
        return self.represent(serializer.save())

    def check_agent(self, ctx):
        if not is_agent(ctx.actor):
            raise errors.PermissionDenied("Insufficient permissions to change categories")
