"""What the batch endpoints (bulkops/batch.py) do with tickets and categories: the single
endpoints' serializers and services, one locked record at a time."""

from bulkops.batch import Handler, register_handler, validated

from . import services
from .api.serializers import CategorySerializer, TicketCreateSerializer, TicketPatchSerializer, TicketSerializer
from .models import Category, Ticket


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
    """Everyone reads categories; agents write them (tickets.services, as the single endpoints)."""

    resource_type, label, serializer_class = "categories", "Category", CategorySerializer

    def visible(self, user):
        return Category.objects.all()

    def lock(self, user, ids):
        return {c.pk: c for c in Category.objects.select_for_update().filter(pk__in=ids).order_by("pk")}

    def create(self, ctx, data):
        services.check_can_change_categories(ctx.actor)  # before validation, as the single endpoint
        return self.represent(services.create_category(ctx, validated(CategorySerializer(data=data))))

    def update(self, category, ctx, data):
        services.check_can_change_categories(ctx.actor)
        data = validated(CategorySerializer(category, data=data, partial=True))
        return self.represent(services.update_category(category, ctx, data))

    def delete(self, category, ctx):
        services.delete_category(category, ctx)
