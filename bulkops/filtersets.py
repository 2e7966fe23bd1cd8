import django_filters

from .models import BulkOperation, ItemStatus, Status


class BulkOperationFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    operation_type = django_filters.CharFilter()
    resource_type = django_filters.CharFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    user = django_filters.NumberFilter(field_name="user_id", method="filter_user")

    class Meta:
        model = BulkOperation
        fields = ["status", "operation_type", "resource_type", "created_after", "created_before", "user"]

    def filter_user(self, queryset, name, value):
        # Only staff see other users' operations; for everyone else the queryset is theirs already.
        return queryset.filter(user_id=value)


class ItemFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ItemStatus.choices)
    error_code = django_filters.CharFilter()
