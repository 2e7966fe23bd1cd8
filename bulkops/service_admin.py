"""Admin pages that change records only through their app's services (SPEC §11).

The admin runs each POST in one transaction. On a change page the record is locked for the
whole request (`get_object`); the form validates the input, then the service applies it to
the locked record in memory (`decide`) or refuses it — a form error with the API's message,
and nothing is saved. `save_model` writes what the service decided (or has it create the
record), `delete_model` deletes through the service.
"""

from functools import partial

from django import forms
from django.contrib import admin

from . import errors
from .admin_safety import SafeChangelistMixin
from .operations import Context


def refusal(exc):
    return forms.ValidationError(exc.message, code=exc.code)


class ServiceForm(forms.ModelForm):
    """A model form whose change the service decides once the input is valid."""

    decide = None  # form -> the service's decision; set per request by ServiceAdmin.get_form
    decision = None

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            try:
                self.decision = self.decide(self)
            except errors.ItemError as exc:
                raise refusal(exc) from None
        return cleaned


def form_values(form, names):
    """{model attribute: value} of the form fields `names`: what a service call takes."""
    values = {}
    for name in names:
        field, value = form.instance._meta.get_field(name), form.cleaned_data[name]
        values[field.attname] = value.pk if field.is_relation and value is not None else value
    return values


def changed_values(form):
    return form_values(form, form.changed_data)


def adopt(obj, created):
    """The admin goes on with the object its form built (inlines, log, redirect): make it the
    record the service created."""
    obj.pk = created.pk
    obj._state.adding = False
    obj.refresh_from_db()


class ServiceAdmin(SafeChangelistMixin, admin.ModelAdmin):
    """By default the app's `services` module decides: its `lock`, `create`, `apply_update`
    (in memory) and `save`, as the API uses them; an admin overrides what differs."""

    form = ServiceForm
    services = None

    def lock(self, user, pk):
        """The record `pk`, locked until the request's transaction ends."""
        return self.services.lock(user, [pk])[pk]

    def decide(self, ctx, form):
        """The service's decision on a valid form; raises errors.ItemError to refuse."""
        if form.instance._state.adding:
            return form_values(form, form.cleaned_data)  # the service decides as it creates
        return self.apply(ctx, form.instance, changed_values(form))

    def create(self, ctx, data):
        return self.services.create(ctx, data)

    def apply(self, ctx, obj, changes):
        return self.services.apply_update(obj, ctx, changes)

    def write(self, ctx, obj, decision):
        self.services.save([decision])

    def remove(self, ctx, obj):
        raise NotImplementedError

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)  # a new class per request
        form.decide = partial(self.decide, Context(actor=request.user))
        return form

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None or request.method != "POST":
            return obj
        return self.lock(request.user, obj.pk)

    def get_actions(self, request, action_location=admin.ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)  # a queryset delete, past the services
        return actions

    def save_model(self, request, obj, form, change):
        ctx = Context(actor=request.user)
        if change:
            self.write(ctx, obj, form.decision)
        else:
            adopt(obj, self.create(ctx, form.decision))

    def delete_model(self, request, obj):
        self.remove(Context(actor=request.user), obj)


class ReadOnlyAdmin(SafeChangelistMixin, admin.ModelAdmin):
    """Audit rows and other records only a service writes: viewed, never added, changed or deleted."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
