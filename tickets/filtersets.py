import django_filters
from django.db.models import Q

from bulkops.filtersets import IdFilter, StrictFilterSet, UtcDateTimeFilter

from .models import Category, Priority, Status, Ticket


class TicketFilterSet(StrictFilterSet):
    """Shared by the list endpoint, bulk `filter` selections and the /tickets/ page."""

    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    priority = django_filters.MultipleChoiceFilter(choices=Priority.choices)
    category = django_filters.ModelChoiceFilter(queryset=Category.objects.all())
    assignee = IdFilter(field_name="assignee_id")
    requester = IdFilter(field_name="requester_id")
    search = django_filters.CharFilter(method="filter_search", label="Search")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    # Only staff (and restore) see deleted tickets; this narrows what they see.
    is_deleted = django_filters.BooleanFilter()

    class Meta:
        model = Ticket
        fields = [
            "status",
            "priority",
            "category",
            "assignee",
            "requester",
            "search",
            "created_after",
            "created_before",
            "is_deleted",
        ]

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(title__icontains=value) | Q(description__icontains=value))
