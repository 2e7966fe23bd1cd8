"""Starting a bulk operation from a page or the admin.

An operation's form is built from its `data_serializer`, which stays the one validation:
the form renders the fields and collects their values, the serializer judges them, and the
operation is then started through the same request serializer and service as the API's.
"""

from django import forms
from django.conf import settings
from rest_framework import serializers

from config.exceptions import first_message

from . import errors, registry, services
from .api.serializers import CreateOperationSerializer, public_names

# What an empty choice means, by the kind of field.
CHOOSE, NONE, UNCHANGED = "— choose —", "— none —", "— leave unchanged —"


def operation_choices(resource):
    """(name, label) of every operation a person may start on `resource`, by label."""
    found = [registry.get(resource, name) for name in public_names(resource)]
    return sorted(((op.name, op.label or op.name) for op in found), key=lambda choice: choice[1])


def label_of(resource, name):
    definition = registry.get(resource, name)
    return definition.label if definition and definition.label else name.replace("_", " ").capitalize()


def field_label(name):
    return name.removesuffix("_id").replace("_", " ").capitalize()


def form_field(field, choices=None):
    """A form field that renders a serializer field; `choices` (a callable) makes it a menu."""
    kwargs = {"label": field_label(field.field_name), "help_text": field.help_text or ""}
    if choices is not None or isinstance(field, serializers.ChoiceField):
        options = choices() if choices is not None else list(field.choices.items())
        empty = UNCHANGED if not field.required else NONE if field.allow_null else CHOOSE
        return forms.TypedChoiceField(
            choices=[("", empty), *options],
            required=field.required and not field.allow_null,
            coerce=int if isinstance(field, serializers.IntegerField) else str,  # a menu of ids gives JSON ids
            **kwargs,
        )
    if isinstance(field, serializers.BooleanField):
        return forms.BooleanField(required=False, **kwargs)
    if isinstance(field, serializers.IntegerField):
        return forms.IntegerField(required=field.required and not field.allow_null, **kwargs)
    long_text = isinstance(field, serializers.CharField) and (field.max_length or 0) > 200
    return forms.CharField(
        required=field.required,
        max_length=getattr(field, "max_length", None),
        widget=forms.Textarea(attrs={"rows": 4}) if long_text else forms.TextInput,
        **kwargs,
    )


def page_filters(filterset, hidden=()):
    """A filterset's form as a page shows it: short labels, whole lists, date pickers."""
    fields = filterset.form.fields
    for name in hidden:
        del fields[name]
    for name, field in fields.items():
        field.label = field_label(name)
        if isinstance(field.widget, forms.SelectMultiple):
            field.widget.attrs["size"] = len(field.choices)
        elif isinstance(field, forms.DateTimeField):
            field.widget.input_type = "datetime-local"
    return filterset.form


def menu(choices, empty="Any"):
    return forms.Select(choices=[("", empty), *choices])


def snapshot_ids(queryset):
    """The selection, resolved now to ids in ascending order: one past the limit at most, so
    that the request serializer refuses an oversized one with its usual message."""
    ids = queryset.order_by("pk").values_list("pk", flat=True)[: settings.BULKOPS_MAX_ITEMS + 1]
    return [pk if isinstance(pk, int) else str(pk) for pk in ids]  # JSON ids, as the API takes them


class OperationForm(forms.Form):
    """The data of one bulk operation, plus the reason stored on every change it makes."""

    description = forms.CharField(
        label="Reason",
        required=False,
        max_length=1000,
        help_text="Optional. Stored in the history of every record this changes.",
    )

    def __init__(self, definition, *args, choices=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.definition = definition
        self.data_fields = definition.data_serializer().fields
        menus = choices or {}
        fields = {name: form_field(field, menus.get(name)) for name, field in self.data_fields.items()}
        self.fields = {**fields, "description": self.fields["description"]}
        self.operation_data = {}

    def clean(self):
        cleaned = super().clean()
        self.operation_data = self.data_from(cleaned)
        data = self.definition.data_serializer(data=self.operation_data)
        if not data.is_valid():
            for name, messages in data.errors.items():
                self.add_error(name if name in self.fields else None, messages)
        return cleaned

    def data_from(self, cleaned):
        """operation_data as the API would get it: an empty optional field is left out
        (unchanged); an empty field that takes null is null (unassign, no category)."""
        data = {}
        for name, field in self.data_fields.items():
            value = cleaned.get(name)
            if value in ("", None):
                if not field.required or name in self.errors:
                    continue
                value = None
            data[name] = value
        return data

    def summary(self):
        """(label, shown value) of what will be set, for the confirmation step."""
        rows = []
        for name, value in self.operation_data.items():
            field = self.fields[name]
            shown = dict(field.choices).get(str(value), value) if hasattr(field, "choices") else value
            rows.append((field.label, "none" if value is None else shown))
        return rows

    def start(self, request, ids):
        """Start the operation over `ids` (async), as the API would. Returns the operation, or
        None with the refusal added to the form's errors (too many items, too many active…)."""
        body = {
            "resource_type": self.definition.resource,
            "ids": ids,
            "operation_type": self.definition.name,
            "operation_data": self.operation_data,
        }
        if self.cleaned_data.get("description"):
            body["metadata"] = {"description": self.cleaned_data["description"]}
        bulk_request = CreateOperationSerializer(data=body, context={"request": request})
        if not bulk_request.is_valid():
            self.add_error(None, first_message(bulk_request.errors))
            return None
        try:
            op, _ = services.start_operation(request.user, bulk_request.validated_data)
        except errors.ItemError as exc:
            self.add_error(None, exc.message)
            return None
        return op
