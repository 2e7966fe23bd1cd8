import django_filters
from django.db.models import Q

from .models import Category, Priority, Status, Ticket


class TicketFilterSet(django_filters.FilterSet):
    """Shared by the list endpoint, bulk `filter` selections and the /tickets/ page."""

    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    priority = django_filters.MultipleChoiceFilter(choices=Priority.choices)
    category = django_filters.ModelChoiceFilter(queryset=Category.objects.all())
    assignee = django_filters.NumberFilter(field_name="assignee_id")
    requester = django_filters.NumberFilter(field_name="requester_id")
    search = django_filters.CharFilter(method="filter_search", label="Search")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

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
        ]

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(title__icontains=value) | Q(description__icontains=value))
