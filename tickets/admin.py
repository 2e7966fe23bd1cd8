from django.contrib import admin

from .models import Category, Comment, Ticket, TicketEvent


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "status", "priority", "category", "requester", "assignee", "version", "is_deleted"]
    list_filter = ["status", "priority", "category", "is_deleted"]
    search_fields = ["title", "description"]
    raw_id_fields = ["requester", "assignee"]
    readonly_fields = ["version", "created_at", "updated_at", "deleted_at"]


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["id", "ticket", "author", "created_at"]
    search_fields = ["body"]
    raw_id_fields = ["ticket", "author", "bulk_operation"]


@admin.register(TicketEvent)
class TicketEventAdmin(admin.ModelAdmin):
    list_display = ["ticket", "field", "old_value", "new_value", "actor", "bulk_operation", "created_at"]
    list_filter = ["field"]
    raw_id_fields = ["ticket", "actor", "bulk_operation"]
