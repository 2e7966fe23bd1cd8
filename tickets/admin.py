from django.contrib import admin

from bulkops.admin import bulk_action
from bulkops.service_admin import ReadOnlyAdmin, ServiceAdmin, adopt, changed_values, form_values

from . import services
from .forms import DATA_CHOICES
from .models import Category, Comment, Ticket, TicketEvent


@admin.register(Category)
class CategoryAdmin(ServiceAdmin):
    search_fields = ["name"]

    def lock(self, user, pk):
        return Category.objects.select_for_update().get(pk=pk)

    def decide(self, ctx, form):
        services.check_can_change_categories(ctx.actor)
        return changed_values(form)

    def write(self, ctx, obj, decision):
        if obj.pk is None:
            adopt(obj, services.create_category(ctx, decision))
        else:
            services.update_category(obj, ctx, decision)

    def remove(self, ctx, obj):
        services.delete_category(obj, ctx)


@admin.register(Ticket)
class TicketAdmin(ServiceAdmin):
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

    def decide(self, ctx, form):
        if form.instance.pk is None:
            return form_values(form, form.cleaned_data)
        return services.apply_update(form.instance, ctx, changed_values(form))

    def write(self, ctx, obj, decision):
        if obj.pk is None:
            adopt(obj, services.create(ctx, decision))
        else:
            services.save([decision])

    def remove(self, ctx, obj):
        """The change page's Delete is the same soft delete as everywhere else, audited."""
        services.save([services.apply_delete(obj, ctx)])


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["id", "ticket", "author", "created_at"]
    search_fields = ["body"]
    raw_id_fields = ["ticket", "author", "bulk_operation"]


@admin.register(TicketEvent)
class TicketEventAdmin(ReadOnlyAdmin):
    list_display = ["ticket", "field", "old_value", "new_value", "actor", "bulk_operation", "created_at"]
    list_filter = ["field"]
    raw_id_fields = ["ticket", "actor", "bulk_operation"]
