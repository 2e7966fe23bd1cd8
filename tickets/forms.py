"""The /tickets/ page's bulk selection, and the menus the ticket operations' forms show."""

from functools import partial

from django import forms
from django.http import QueryDict

from bulkops import labels, registry
from bulkops.errors import first_message
from bulkops.filtersets import given_filters
from bulkops.forms import menu, operation_choices, page_filters

from .filtersets import TicketFilterSet
from .models import Category, Ticket
from .people import visible_people

MAX_ID = 2**63 - 1  # bigint: a larger id cannot exist
PREVIEW_ROWS = 10  # tickets the confirmation shows one by one
TICKET_FIELDS = {field.attname for field in Ticket._meta.concrete_fields}


def user_choices(viewer=None):
    """Active users by name: those `viewer` may see (no viewer: the staff-only admin, everyone)."""
    users = visible_people(viewer).order_by("username")
    return [(str(pk), name) for pk, name in users.values_list("pk", "username")]


def category_choices():
    return [(str(pk), name) for pk, name in Category.objects.order_by("name").values_list("pk", "name")]


# Menus instead of bare ids in the operation forms, on the page and in the admin alike.
DATA_CHOICES = {"assignee_id": user_choices, "category_id": category_choices}


def data_choices(viewer):
    """The menus as `viewer` may see them (a requester is not shown every user)."""
    return {**DATA_CHOICES, "assignee_id": partial(user_choices, viewer)}


def list_filters(filterset, user):
    """The list's filters: people by name; deleted tickets are for staff only."""
    form = page_filters(filterset, hidden=() if user.is_staff else ("is_deleted",))
    people = user_choices(user)
    for name in ("assignee", "requester"):
        form.fields[name].widget = menu(people, "Anyone")
    form.fields["category"].empty_label = "Any"
    if "is_deleted" in form.fields:
        form.fields["is_deleted"].label = "Deleted"
        form.fields["is_deleted"].widget = menu([("false", "No"), ("true", "Yes")])
    return form


class IdListField(forms.Field):
    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        try:
            ids = {int(v) for v in value or []}
        except (TypeError, ValueError):
            raise forms.ValidationError("A ticket id must be a whole number.") from None
        if any(not 0 < pk <= MAX_ID for pk in ids):
            raise forms.ValidationError("No ticket has that id.")
        return sorted(ids)


class SelectionForm(forms.Form):
    """Which operation, on which tickets: those ticked, or every ticket the list's filter
    matches (`select_across`), not only the ones on the page.

    After validation, `definition` is the operation and `tickets` the queryset to change."""

    operation = forms.ChoiceField(label="Action")
    ids = IdListField(required=False)
    select_across = forms.BooleanField(required=False, widget=forms.HiddenInput)
    query = forms.CharField(required=False, widget=forms.HiddenInput)  # the list's filters

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["operation"].choices = operation_choices("tickets", user)

    def clean(self):
        cleaned = super().clean()
        if "operation" not in cleaned or "ids" not in cleaned:
            return cleaned
        self.definition = registry.get("tickets", cleaned["operation"])
        visible = self.definition.visible(self.user)
        if cleaned["select_across"]:
            filterset = TicketFilterSet(given_filters(QueryDict(cleaned["query"])), queryset=visible)
            if not filterset.is_valid():
                raise forms.ValidationError(f"The list's filter cannot be used: {first_message(filterset.errors)}")
            selected = filterset.qs
        elif cleaned["ids"]:
            selected = visible.filter(pk__in=cleaned["ids"])
        else:
            raise forms.ValidationError("Select at least one ticket, or all tickets matching the filter.")
        self.tickets = self.definition.changeable(selected)
        self.count = self.tickets.count()
        if not self.count:
            raise forms.ValidationError("No ticket you can see in this selection can take this action.")
        return cleaned


def change_preview(definition, tickets, data):
    """The first tickets of a selection, in the order they are changed, each with
    [(field label, now, after)] for the fields the action sets (a comment's body is no field
    of the ticket: add_comment and delete list the tickets only)."""
    names = [name for name in data if name in TICKET_FIELDS]
    first = list(tickets.order_by("pk")[:PREVIEW_ROWS])
    now = labels.shown_rows(definition, [{name: getattr(ticket, name) for name in names} for ticket in first])
    after = labels.shown_rows(definition, [{name: data[name] for name in names}])[0]
    return [
        (ticket, [(labels.field_label(name), shown[name], after[name]) for name in names])
        for ticket, shown in zip(first, now, strict=True)
    ]
