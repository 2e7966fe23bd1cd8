from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model

from bulkops import errors
from bulkops.admin import bulk_action
from bulkops.operations import Context
from bulkops.service_admin import ReadOnlyAdmin, ServiceAdmin, refusal

from . import services
from .models import Metric, MetricEvent, MetricPermission


class SharesFormSet(forms.BaseInlineFormSet):
    """The inline's rows, shared, changed and taken back through `services.apply_share`/`apply_unshare`.

    `clean` asks the services for each touched row (a refusal is an error above the rows);
    the save methods write what they answered.
    """

    ctx = None  # set per request by MetricPermissionInline.get_formset

    def clean(self):
        super().clean()
        refusals = []
        for form in self.forms:
            # A deleted row is taken back whatever else it says, as Django ignores its errors.
            if not self._should_delete_form(form) and (form.errors or not form.has_changed()):
                continue
            try:
                form.shares = self.decide(form)
            except errors.ItemError as exc:
                refusals.append(refusal(exc))
        if refusals:
            raise forms.ValidationError(refusals)

    def decide(self, form):
        """A new row shares, a deleted one takes back, a row moved to another user does both."""
        metric, deleted = self.instance, self._should_delete_form(form)
        before = form.initial.get("user")  # whom an existing row shared with
        shares = []
        if before is not None and (deleted or before != form.cleaned_data["user"].pk):
            shares.append(services.apply_unshare(metric, self.ctx, get_user_model().objects.get(pk=before)))
        if not deleted:
            shares.append(services.apply_share(metric, self.ctx, form.cleaned_data["user"], form.cleaned_data["role"]))
        return shares

    def write(self, form):
        for share in form.shares:
            services.save_share(share)
        return form.instance

    def save_new(self, form, commit=True):
        return self.write(form)

    def save_existing(self, form, obj, commit=True):
        return self.write(form)

    def delete_existing(self, obj, commit=True):
        self.write(next(form for form in self.initial_forms if form.instance.pk == obj.pk))


class MetricPermissionInline(admin.TabularInline):
    model = MetricPermission
    formset = SharesFormSet
    raw_id_fields = ["user"]
    extra = 0

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)  # a new class per request
        formset.ctx = Context(actor=request.user)
        return formset


@admin.register(Metric)
class MetricAdmin(ServiceAdmin):
    services = services
    list_display = ["name", "verification", "owner", "version", "updated_at"]
    list_filter = ["verification"]
    search_fields = ["name", "description"]
    readonly_fields = ["owner", "version", "created_at", "updated_at"]  # a new metric is the actor's
    inlines = [MetricPermissionInline]
    actions = [bulk_action("metrics", "set_verification", "Set verification…")]

    def decide(self, ctx, form):
        """A name the owner uses on another metric is refused first, as the API refuses it."""
        metric = None if form.instance._state.adding else form.instance
        owner_id = ctx.actor.pk if metric is None else metric.owner_id
        services.check_name_free(ctx.actor, owner_id, form.cleaned_data["name"], metric=metric)
        return super().decide(ctx, form)

    def get_inlines(self, request, obj):
        return self.inlines if obj else []  # a metric is shared once it exists

    def has_delete_permission(self, request, obj=None):
        return False  # no service deletes a metric (nor does the API)


@admin.register(MetricPermission)
class MetricPermissionAdmin(ReadOnlyAdmin):
    """Shares are made on the metric's page, through the services."""

    list_display = ["metric", "user", "role"]
    list_filter = ["role"]


@admin.register(MetricEvent)
class MetricEventAdmin(ReadOnlyAdmin):
    list_display = ["metric", "field", "old_value", "new_value", "actor", "bulk_operation", "created_at"]
    list_filter = ["field"]
