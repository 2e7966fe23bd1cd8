from django.contrib import admin

from bulkops.admin import BulkActionsMixin

from .models import Book


@admin.register(Book)
class BookAdmin(BulkActionsMixin, admin.ModelAdmin):
    list_display, bulk_resource = ["title", "shelf"], "books"
