"""Stored values as the forms showed them, and counts in words.

An operation's data holds what the API takes (`assignee_id: 3`, `status: "resolved"`); the
pages show what the forms offered (the user's name, "Resolved"). Choices are labelled by the
operation's data serializer; ids are named by the operation's `value_names`. CSV and the API
keep the stored values: they are for machines.
"""

from rest_framework import serializers

from . import registry

NONE = "none"  # what an empty value (unassigned, no category) reads as
ITEMS = ("item", "items")
RECORDS = ("record", "records")  # a mixed batch, or a resource without a model of its own


def count_of(number, resource):
    """ "1 ticket", "2 tickets": a count with its noun ("items", or a resource's model's)."""
    one, many = ITEMS if resource == "items" else nouns_of(registry.resource(resource))
    return f"{number} {one if number == 1 else many}"


def nouns_of(resource):
    if resource is None or resource.model is None:
        return RECORDS
    return str(resource.model._meta.verbose_name), str(resource.model._meta.verbose_name_plural)


def field_label(name):
    return name.removesuffix("_id").replace("_", " ").capitalize()


def shown_rows(definition, rows):
    """`rows` (dicts of stored values) as the forms showed them, each id field named with one
    query for all the rows."""
    fields = definition.data_serializer().fields if definition else {}
    names = {}  # by id as text: a form's data holds "3" where a stored operation holds 3
    for name, namer in (definition.value_names if definition else {}).items():
        ids = {str(row[name]) for row in rows if row.get(name) is not None}
        names[name] = {str(pk): shown for pk, shown in namer(ids).items()} if ids else {}

    def show(name, value):
        if value is None:
            return NONE
        if name in names:
            return names[name].get(str(value), f"#{value} (gone)")
        field = fields.get(name)
        if isinstance(field, serializers.ChoiceField):
            return field.choices.get(value, value)
        return value

    return [{name: show(name, value) for name, value in row.items()} for row in rows]


def shown_data(definition, data):
    """[(label, shown value)] of one operation's data, for a summary."""
    return [(field_label(name), value) for name, value in shown_rows(definition, [data])[0].items()]
