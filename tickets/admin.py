from django.contrib import admin

from bulkops.admin import bulk_action
from bulkops.admin_safety import SafeChangelistMixin

from . import services
from .forms import DATA_CHOICES
from .models import Category, Comment, Ticket, TicketEvent


@admin.register(Category)
class CategoryAdmin(SafeChangelistMixin, admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Ticket)
class TicketAdmin(SafeChangelistMixin, admin.ModelAdmin):
    list_display = ["id", "title", "status", "priority", "category", "requester", "assignee", "version", "is_deleted"]
    list_filter = ["status", "priority", "category", "is_deleted"]
    search_fields = ["title", "description"]
    raw_id_fields = ["requester", "assignee"]
    readonly_fields = ["version", "created_at", "updated_at", "deleted_at"]
    # Each starts a bulk operation (soft delete included): audited, cancellable, visible.
    actions = [
        bulk_action("tickets", "update_status", "Change status…"),
        bulk_action("tickets", "assign", "Assign…", choices=DATA_CHOICES),
        bulk_action("tickets", "set_priority", "Set priority…"),
        bulk_action("tickets", "set_category", "Set category…", choices=DATA_CHOICES),
        bulk_action("tickets", "add_comment", "Add comment…"),
        bulk_action("tickets", "delete", "Delete…", permission="delete"),
    ]

    def get_actions(self, request, action_location=admin.ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)  # a hard delete, past the audit trail: "Delete…" instead
        return actions

    def delete_model(self, request, obj):
        """The change page's Delete is the same soft delete as everywhere else, audited."""
        services.change(obj.pk, services.Context(actor=request.user), services.apply_delete)


@admin.register(Comment)
class CommentAdmin(SafeChangelistMixin, admin.ModelAdmin):
    list_display = ["id", "ticket", "author", "created_at"]
    search_fields = ["body"]
    raw_id_fields = ["ticket", "author", "bulk_operation"]


@admin.register(TicketEvent)
class TicketEventAdmin(SafeChangelistMixin, admin.ModelAdmin):
    list_display = ["ticket", "field", "old_value", "new_value", "actor", "bulk_operation", "created_at"]
    list_filter = ["field"]
    raw_id_fields = ["ticket", "actor", "bulk_operation"]
