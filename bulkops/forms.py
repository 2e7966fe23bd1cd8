"""Starting a bulk operation from a page or the admin.

An operation's form is built from its `data_serializer`, which stays the one validation:
the form renders the fields and collects their values, the serializer judges them, and the
operation is then started through the same request serializer and service as the API's.
"""

import re
import secrets

from django import forms
from rest_framework import serializers

from . import conf, errors, followups, imports, labels, registry, services
from .api.serializers import ITEM_ERROR_CODES, CreateOperationSerializer, public_names
from .labels import count_of, field_label

TOKEN = re.compile(r"[\w-]{32}", re.ASCII)  # what new_token() makes
USED_TOKENS = "bulkops_used_tokens"  # in the session: tokens of forms that leave no record (cancel)
MAX_USED_TOKENS = 50
START = "start"  # the purpose of every form that starts an operation
DATA = "data"  # the prefix of an operation form's fields, apart from the page's own

# What an empty choice means, by the kind of field.
CHOOSE, NONE, UNCHANGED = "— choose —", "— none —", "— leave unchanged —"


def operation_choices(resource, user):
    """(name, label) of every operation `user` may start on `resource`, by label: a menu that
    offers what would fail every item is a trap."""
    found = [registry.get(resource, name) for name in public_names(resource)]
    return sorted(((op.name, op.label or op.name) for op in found if op.allowed(user)), key=lambda choice: choice[1])


def label_of(resource, name):
    definition = registry.get(resource, name)
    return definition.label if definition and definition.label else name.replace("_", " ").capitalize()


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
    ids = queryset.order_by("pk").values_list("pk", flat=True)[: conf.MAX_ITEMS + 1]
    return [pk if isinstance(pk, int) else str(pk) for pk in ids]  # JSON ids, as the API takes them


def new_token():
    return secrets.token_urlsafe(24)


class OnceForm(forms.Form):
    """A page form that starts or changes an operation, carrying a one-time token made when
    the form is first rendered.

    Submitting it again (Back, a double click, a reload of the POST) sends the same token. It
    is the Idempotency-Key of what the form starts, in a keyspace of its own (`page:`), so the
    service answers with the operation the first submit created. A token that is missing or
    not one of ours is replaced: such a submit is a first one."""

    token = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, purpose, **kwargs):
        super().__init__(*args, **kwargs)
        self.purpose = purpose
        key = self.add_prefix("token")
        if not self.is_bound:
            self.initial["token"] = new_token()
        elif not TOKEN.fullmatch(self.data.get(key) or ""):
            self.data = self.data.copy()
            self.data[key] = new_token()

    @property
    def submitted_token(self):
        return self.data[self.add_prefix("token")]

    def once(self):
        """The Idempotency-Key arguments of the service call this form makes. The fingerprint
        is the form's purpose, not its values: a resubmit after going Back to change them
        still shows what the first submit started."""
        return {"idempotency_key": f"page:{self.submitted_token}", "body_fingerprint": f"page:{self.purpose}"}

    def earlier(self, user):
        """The operation an earlier submit of this form created, if any."""
        try:
            return services.replayed(user, **self.once())
        except errors.IdempotencyKeyReused:  # another form's token: what the form does refuses it
            return None

    def first_submit(self, session):
        """Whether the form is submitted for the first time, for a form whose effect leaves no
        record to find it by (a cancel): its token is kept in the session."""
        used = session.get(USED_TOKENS, [])
        if self.submitted_token in used:
            return False
        session[USED_TOKENS] = [*used, self.submitted_token][-MAX_USED_TOKENS:]
        return True


class RevertForm(OnceForm):
    """Revert, or its preview (`dry_run`): each its own one-time token, so that the preview's
    submit never stands for the revert's."""

    dry_run = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, op_id, preview=False, **kwargs):
        super().__init__(*args, purpose=f"revert{'-preview' if preview else ''}:{op_id}", **kwargs)
        self.preview = preview
        if preview and not self.is_bound:
            self.initial["dry_run"] = True

    @classmethod
    def posted(cls, data, op_id):
        """The form a page posted: the preview's or the revert's, by its `dry_run` field."""
        return cls(data, op_id=op_id, preview=forms.BooleanField().to_python(data.get("dry_run")))

    def options(self):
        return {"dry_run": self.preview}


class RetryForm(OnceForm):
    """Retry: which failures to take again, by error code; those a retry can change are ticked."""

    codes = forms.MultipleChoiceField(
        label="Retry the items that failed with",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose which failures to retry."},
    )

    def __init__(self, *args, op_id, counts=None, **kwargs):
        super().__init__(*args, purpose=f"retry:{op_id}", **kwargs)
        field = self.fields["codes"]
        if counts is None:  # a submit: any item error code may be asked for
            field.choices = [(code, code) for code in ITEM_ERROR_CODES]
        else:
            field.choices = [(code, f"{code} ({count_of(n, 'items')})") for code, n in counts.items()]
            self.initial["codes"] = [code for code in counts if code in followups.RETRYABLE]

    def options(self):
        if not self.is_valid():  # the token always validates: the codes are what can be wrong
            raise errors.ValidationFailed(self.errors["codes"][0])
        return {"codes": self.cleaned_data["codes"]}


class RejectForm(OnceForm):
    """Reject an operation awaiting approval, saying why (the creator sees it)."""

    reason = forms.CharField(label="Reason", max_length=1000, widget=forms.TextInput(attrs={"size": 30}))

    def __init__(self, *args, op_id, **kwargs):
        super().__init__(*args, purpose=f"reject:{op_id}", **kwargs)


class OperationForm(OnceForm):
    """The data of one bulk operation, plus the reason stored on every change it makes."""

    description = forms.CharField(
        label="Reason",
        required=False,
        max_length=1000,
        help_text="Optional. Stored in the history of every record this changes.",
    )

    def __init__(self, definition, *args, choices=None, **kwargs):
        super().__init__(*args, purpose=START, prefix=DATA, **kwargs)
        self.definition = definition
        self.data_fields = definition.data_serializer().fields
        menus = choices or {}
        fields = {name: form_field(field, menus.get(name)) for name, field in self.data_fields.items()}
        self.fields = {**fields, "description": self.fields["description"], "token": self.fields["token"]}
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
        return labels.shown_data(self.definition, self.operation_data)

    def start(self, request, ids):
        """Start the operation over `ids` (async), as the API would. Returns (operation,
        created) — not created when this form was submitted before — or (None, False) with
        the refusal added to the form's errors (too many items, too many active…)."""
        body = {
            "resource_type": self.definition.resource.name,
            "ids": ids,
            "operation_type": self.definition.name,
            "operation_data": self.operation_data,
        }
        if self.cleaned_data.get("description"):
            body["metadata"] = {"description": self.cleaned_data["description"]}
        bulk_request = CreateOperationSerializer(data=body, context={"request": request})
        if not bulk_request.is_valid():
            self.add_error(None, errors.first_message(bulk_request.errors))
            return None, False
        try:
            return services.start_operation(request.user, bulk_request.validated_data, **self.once())
        except errors.ItemError as exc:
            self.add_error(None, exc.message)
            return None, False


def key_label(name):
    """ "ID", "External ID", "Name": what a record may be matched on."""
    label = " ".join("ID" if word == "id" else word for word in name.split("_"))
    return label[0].upper() + label[1:]


class ImportForm(OnceForm):
    """Upload a file to import: its preview (a dry run) is started first, on the same rows."""

    file = forms.FileField(label="File", help_text="CSV with a header row (UTF-8), or JSON Lines (.jsonl)")
    action = forms.ChoiceField(
        choices=[
            (imports.UPSERT, "Create new records and update matching ones"),
            (imports.CREATE, "Create only"),
            (imports.UPDATE, "Update only"),
        ]
    )
    match_on = forms.ChoiceField(label="Match records on")
    description = forms.CharField(
        label="Reason", required=False, max_length=1000, help_text="Optional. Stored in the history of every record."
    )

    def __init__(self, definition, *args, **kwargs):
        super().__init__(*args, purpose=f"import-preview:{definition.resource.name}", **kwargs)
        self.definition = definition
        self.fields["match_on"].choices = [(name, key_label(name)) for name in definition.match_fields]

    def preview(self, user):
        """Start the dry run of this upload: (operation, created), or (None, False) with the
        refusal of the file among the form's errors."""
        upload, data = self.cleaned_data["file"], self.cleaned_data
        jsonl = upload.name.lower().endswith((".jsonl", ".ndjson"))
        options = imports.Options(
            resource_type=self.definition.resource.name,
            action=data["action"],
            match_on=data["match_on"],
            format="jsonl" if jsonl else "csv",
            dry_run=True,
            metadata={"description": data["description"]} if data["description"] else {},
        )
        if upload.size > conf.MAX_IMPORT_BYTES:
            self.add_error("file", f"The file is {upload.size} bytes; the limit is {conf.MAX_IMPORT_BYTES}.")
            return None, False
        try:
            return imports.start_import(user, self.definition, options, upload.file, **self.once())
        except imports.FileRefused as exc:
            self.add_error("file", str(exc))
        except errors.ItemError as exc:
            self.add_error(None, exc.message)
        return None, False


class StartImportForm(OnceForm):
    """Start the import a preview showed."""

    def __init__(self, *args, preview_id, **kwargs):
        super().__init__(*args, purpose=f"import:{preview_id}", **kwargs)
