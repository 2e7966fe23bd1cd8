from django.contrib import admin

from bulkops.admin import bulk_action
from bulkops.admin_safety import SafeChangelistMixin
from bulkops.service_admin import ReadOnlyAdmin, ServiceAdmin

from . import services
from .forms import DATA_CHOICES
from .models import Category, Comment, Ticket, TicketEvent


@admin.register(Category)
class CategoryAdmin(ServiceAdmin):
    search_fields = ["name"]

    def lock(self, user, pk):
        return Category.objects.select_for_update().get(pk=pk)

    def create(self, ctx, data):
        return services.create_category(ctx, data)

    def apply(self, ctx, category, changes):
        services.check_can_change_categories(ctx.actor)
        return changes

    def write(self, ctx, category, changes):
        services.update_category(category, ctx, changes)

    def remove(self, ctx, obj):
        services.delete_category(obj, ctx)


@admin.register(Ticket)
class TicketAdmin(ServiceAdmin):
    services = services
    list_display = ["id", "title", "status", "priority", "category", "requester", "assignee", "version", "is_deleted"]
    list_filter = ["status", "priority", "category", "is_deleted"]
    search_fields = ["title", "description"]
    raw_id_fields = ["requester", "assignee"]
    # Each starts a bulk operation (soft delete included): audited, cancellable, visible.
    actions = [
        bulk_action("tickets", "update_status", "Change status…"),
        bulk_action("tickets", "assign", "Assign…", choices=DATA_CHOICES),
        bulk_action("tickets", "set_priority", "Set priority…"),
        bulk_action("tickets", "set_category", "Set category…", choices=DATA_CHOICES),
        bulk_action("tickets", "add_comment", "Add comment…"),
        bulk_action("tickets", "delete", "Delete…", permission="delete"),
    ]

    def get_readonly_fields(self, request, obj=None):
        # The services change neither who requested a ticket nor, but by Delete, whether it is deleted.
        fixed = ["version", "is_deleted", "deleted_at", "created_at", "updated_at"]
        return fixed if obj is None else ["requester", *fixed]

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj and obj.is_deleted)

    def lock(self, user, pk):
        return services.lock(user, [pk], include_deleted=True)[pk]

    def remove(self, ctx, obj):
        """The change page's Delete is the same soft delete as everywhere else, audited."""
        services.save([services.apply_delete(obj, ctx)])


@admin.register(Comment)
class CommentAdmin(SafeChangelistMixin, admin.ModelAdmin):
    list_display = ["id", "ticket", "author", "created_at"]
    search_fields = ["body"]
    raw_id_fields = ["ticket", "author", "bulk_operation"]


@admin.register(TicketEvent)
class TicketEventAdmin(ReadOnlyAdmin):
    list_display = ["ticket", "field", "old_value", "new_value", "actor", "bulk_operation", "created_at"]
    list_filter = ["field"]
    raw_id_fields = ["ticket", "actor", "bulk_operation"]
