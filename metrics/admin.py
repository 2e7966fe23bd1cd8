from django.contrib import admin

from bulkops.admin import bulk_action
from bulkops.admin_safety import SafeChangelistMixin

from .models import Metric, MetricPermission


class MetricPermissionInline(admin.TabularInline):
    model = MetricPermission
    raw_id_fields = ["user"]
    extra = 0


@admin.register(Metric)
class MetricAdmin(SafeChangelistMixin, admin.ModelAdmin):
    list_display = ["name", "verification", "owner", "version", "updated_at"]
    list_filter = ["verification"]
    search_fields = ["name", "description"]
    raw_id_fields = ["owner"]
    inlines = [MetricPermissionInline]
    actions = [bulk_action("metrics", "set_verification", "Set verification…")]


@admin.register(MetricPermission)
class MetricPermissionAdmin(SafeChangelistMixin, admin.ModelAdmin):
    list_display = ["metric", "user", "role"]
    list_filter = ["role"]
    raw_id_fields = ["metric", "user"]
