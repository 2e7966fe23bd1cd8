"""The admin: bulk actions for the domain changelists, and the BulkOperation pages."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.paginator import Paginator
from django.forms.models import BaseInlineFormSet
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from . import control, errors, registry, services
from .forms import OperationForm, snapshot_ids
from .models import APPROVE_PERMISSION, BulkOperation, BulkOperationItem, Status
from .service_admin import ReadOnlyAdmin
from .views import opened, restarted

# --- bulk actions on the domain changelists ---------------------------------------------


def how_many(count, opts):
    return f"{count} {opts.verbose_name if count == 1 else opts.verbose_name_plural}"


def bulk_action(resource, name, description, *, permission="change", choices=None):
    """A changelist action that starts the bulk operation (resource, name) on the selected
    records, after an intermediate form that says how many. With "select all N", Django
    passes the whole filtered queryset; the ids of those the operation can change are the
    snapshot it runs on."""

    verb = description.rstrip("…")

    def action(modeladmin, request, queryset):
        applied = "apply" in request.POST
        if applied and (earlier := restarted(request)):
            return earlier
        definition = registry.get(resource, name)
        targets = definition.changeable(queryset)
        form = OperationForm(definition, request.POST if applied else None, choices=choices)
        opts = modeladmin.model._meta
        if form.is_bound and form.is_valid():
            op, created = form.start(request, snapshot_ids(targets))
            if op is not None:
                return opened(request, op, created, f"{verb}: started on {how_many(op.total_items, opts)}.")
        count = targets.count()
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": f"{verb}: {how_many(count, opts)}",
            "opts": opts,
            "form": form,
            "count": count,
            "action": request.POST.get("action", ""),
            "select_across": request.POST.get("select_across", "0"),
            "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
            "media": modeladmin.media + form.media,
        }
        return TemplateResponse(request, "admin/bulkops/action_form.html", context)

    action.__name__ = f"bulk_{name}"  # the admin tells actions apart by name
    return admin.action(description=description, permissions=[permission])(action)


class BulkActionsMixin:
    """A ModelAdmin mixin: an action for each operation type a create request may name on
    `bulk_resource` (a destructive one asks for the delete permission). Read from the registry
    when the admin asks: admin modules load before the resources register."""

    bulk_resource = None  # "books"

    @property
    def actions(self):
        resource = self.bulk_resource
        return [
            bulk_action(resource, name, f"{op.label}…", permission="delete" if op.destructive else "change")
            for name in registry.names(resource)
            if (op := registry.get(resource, name))
        ]


# --- BulkOperation ------------------------------------------------------------------------


class ItemPageFormSet(BaseInlineFormSet):
    """One page of an operation's items: an operation may have 100,000 of them."""

    per_page = 100
    page_number = 1

    def get_queryset(self):
        if not hasattr(self, "_page"):
            self._page = Paginator(super().get_queryset(), self.per_page).get_page(self.page_number)
            self._page.object_list = list(self._page.object_list)
        return self._page.object_list

    @property
    def page(self):
        self.get_queryset()
        return self._page


class ItemInline(admin.TabularInline):
    model = BulkOperationItem
    formset = ItemPageFormSet
    template = "admin/bulkops/items_inline.html"
    fields = ["position", "target_id", "status", "error_code", "error_message", "attempts", "processed_at"]
    readonly_fields = fields
    can_delete = False
    extra = 0

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.page_number = request.GET.get("items_page", 1)
        return formset

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.action(
    description="Cancel this operation",
    description_plural="Cancel selected operations",
    location=[admin.ActionLocation.CHANGE_LIST, admin.ActionLocation.CHANGE_FORM],
)
def cancel_operations(modeladmin, request, queryset):
    cancelled = 0
    for op_id in queryset.active().values_list("pk", flat=True):
        try:
            services.cancel_operation(request.user, op_id)
        except errors.ItemError:  # finished meanwhile, or not this user's to cancel
            continue
        cancelled += 1
    skipped = queryset.count() - cancelled
    modeladmin.message_user(request, f"Cancelled {cancelled} operation{'s' * (cancelled != 1)}.")
    if skipped:
        modeladmin.message_user(request, f"{skipped} had already finished.", messages.WARNING)


def review_each(modeladmin, request, queryset, review, verb):
    """Approve or reject each selected operation awaiting approval through the services, which
    refuse the user's own; report how many and why the others were left."""
    done, refused = 0, []
    for op_id in queryset.filter(status=Status.AWAITING_APPROVAL).values_list("pk", flat=True):
        try:
            review(request.user, op_id)
        except errors.ItemError as exc:  # their own, or decided meanwhile
            refused.append(exc.message)
            continue
        done += 1
    modeladmin.message_user(request, f"{verb} {done} operation{'s' * (done != 1)}.")
    others = queryset.count() - done - len(refused)
    if others:
        modeladmin.message_user(request, f"{others} did not await approval.", messages.WARNING)
    for message in sorted(set(refused)):
        modeladmin.message_user(request, message, messages.WARNING)


@admin.action(
    description="Approve this operation",
    description_plural="Approve selected operations",
    permissions=["approve"],
    location=[admin.ActionLocation.CHANGE_LIST, admin.ActionLocation.CHANGE_FORM],
)
def approve_operations(modeladmin, request, queryset):
    review_each(modeladmin, request, queryset, services.approve_operation, "Approved")


class RejectActionForm(forms.Form):
    reason = forms.CharField(label="Reason", max_length=1000, help_text="Shown to each operation's creator.")


@admin.action(
    description="Reject selected operations…",
    permissions=["approve"],
)
def reject_operations(modeladmin, request, queryset):
    """After an intermediate form that asks why."""
    form = RejectActionForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        reason = form.cleaned_data["reason"]
        review_each(
            modeladmin,
            request,
            queryset,
            lambda user, op_id: services.reject_operation(user, op_id, reason),
            "Rejected",
        )
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Reject: why?",
        "opts": modeladmin.model._meta,
        "form": form,
        "count": queryset.count(),
        "action": request.POST.get("action", ""),
        "select_across": request.POST.get("select_across", "0"),
        "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
    }
    return TemplateResponse(request, "admin/bulkops/reject_form.html", context)


def control_action(name, service, verb, done):
    """An admin action that pauses or resumes the selected operations, each under its own lock
    (control.py); those it cannot (finished, or not in a state for it) are counted, not changed."""

    @admin.action(
        description=f"{verb} this operation",
        description_plural=f"{verb} selected operations",
        location=[admin.ActionLocation.CHANGE_LIST, admin.ActionLocation.CHANGE_FORM],
    )
    def action(modeladmin, request, queryset):
        changed = 0
        for op_id in queryset.values_list("pk", flat=True):
            try:
                service(request.user, op_id)
            except errors.ItemError:
                continue
            changed += 1
        modeladmin.message_user(request, f"{done} {changed} operation{'s' * (changed != 1)}.")
        if skipped := queryset.count() - changed:
            modeladmin.message_user(request, f"{skipped} could not be {done.lower()}.", messages.WARNING)

    action.__name__ = name
    return action


pause_operations = control_action("pause_operations", control.pause_operation, "Pause", "Paused")
resume_operations = control_action("resume_operations", control.resume_operation, "Resume", "Resumed")


@admin.register(BulkOperation)
class BulkOperationAdmin(ReadOnlyAdmin):
    """Read-only: operations change only through the engine (cancel, pause, resume are actions). Never
    deleted here either: that would collect every item in Python; old operations go with
    cleanup_bulk_operations."""

    list_display = [
        "id", "operation_type", "resource_type", "user", "status", "progress",
        "total_items", "successful_items", "failed_items", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "resource_type", "operation_type", "mode", "execution", "dry_run", "created_at"]
    list_select_related = ["user"]
    search_fields = ["user__username", "operation_type"]
    date_hierarchy = "created_at"
    actions = [cancel_operations, pause_operations, resume_operations, approve_operations, reject_operations]
    inlines = [ItemInline]
    readonly_fields = ["pages"]

    def has_approve_permission(self, request):
        return request.user.has_perm(APPROVE_PERMISSION)

    @admin.display(description="Progress")
    def progress(self, op):
        return f"{op.progress_percentage} %"

    @admin.display(description="See also")
    def pages(self, op):
        return format_html(
            '<a href="{}">Progress page</a> · <a href="{}">Items (JSON)</a> · <a href="{}">Items (CSV)</a>',
            reverse("bulkops:operation", kwargs={"op_id": op.pk}),
            reverse("bulk-operation-items", kwargs={"pk": op.pk}),
            reverse("bulk-operation-items-csv", kwargs={"pk": op.pk}),
        )
