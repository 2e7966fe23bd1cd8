"""{% load bulkops_labels %}: counts in words on the pages (bulkops.labels)."""

from django import template

from .. import labels

register = template.Library()


@register.filter
def count_of(number, resource):
    """{{ op.total_items|count_of:op.resource_type }} ⇒ "1 ticket", "2 tickets"."""
    return labels.count_of(number, resource)
