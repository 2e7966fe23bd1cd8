"""Tickets and categories as the bulk engine sees them (bulkops.resources): each registered
once, for the bulk operations (tickets/operations.py) and the batch endpoints alike, on the
single endpoints' serializers and services."""

from bulkops.registry import register_resource
from bulkops.resources import Resource, VersionedResource, validated

from . import services
from .api.serializers import CategorySerializer, TicketCreateSerializer, TicketPatchSerializer, TicketSerializer
from .filtersets import TicketFilterSet
from .models import Category, Ticket


@register_resource
class Tickets(VersionedResource):
    name, model, label, id_alias = "tickets", Ticket, "Ticket", "ticket_ids"
    filterset_class = TicketFilterSet
    batch_methods, serializer_class = ("POST", "PATCH", "DELETE"), TicketSerializer

    def visible(self, user, *, include_deleted=False):
        return Ticket.objects.visible_to(user, include_deleted=include_deleted)

    def lock(self, user, ids, *, include_deleted=False):
        return services.lock(user, ids, include_deleted=include_deleted)

    def change(self, ticket, ctx, values):
        return services.apply_update(ticket, ctx, values)

    def save(self, changes):
        services.save(changes)

    def describe(self, change):
        before, result = super().describe(change)
        if change.comments:
            result["comment_id"] = change.comments[0].pk
        return before, result

    def revert_payload(self, before, result):
        if result.get("action") == "created":  # an import's new ticket
            return {"delete_created": True, "version": result["version"]}
        if result.get("comment_id"):
            return {"remove_comment": result["comment_id"]}
        if "comment" in before:  # a removed comment: revert of a revert of add_comment
            return {"add_comment": before["comment"]["body"]}
        return super().revert_payload(before, result)

    def create(self, ctx, data):
        data = validated(TicketCreateSerializer(data=data, context={"viewer": ctx.actor}))
        return self.represent(services.create(ctx, data))

    def update(self, ticket, ctx, data):
        changes = dict(
            validated(TicketPatchSerializer(data=data, context={"viewer": ctx.actor, "ticket_id": ticket.pk}))
        )
        version = changes.pop("version", None)
        change = services.apply_update(ticket, ctx, changes, expected_version=version)
        services.save([change])
        return self.represent(change.ticket)

    def delete(self, ticket, ctx):
        services.save([services.apply_delete(ticket, ctx)])


@register_resource
class Categories(Resource):
    """Everyone reads categories; agents write them (tickets.services, as the single endpoints).
    No bulk operation takes them: the batch endpoints only."""

    name, model, label = "categories", Category, "Category"
    revert_type = None
    batch_methods, serializer_class = ("POST", "PATCH", "DELETE"), CategorySerializer

    def create(self, ctx, data):
        services.check_can_change_categories(ctx.actor)  # before validation, as the single endpoint
        return self.represent(services.create_category(ctx, validated(CategorySerializer(data=data))))

    def update(self, category, ctx, data):
        services.check_can_change_categories(ctx.actor)
        data = validated(CategorySerializer(category, data=data, partial=True))
        return self.represent(services.update_category(category, ctx, data))

    def delete(self, category, ctx):
        services.delete_category(category, ctx)
