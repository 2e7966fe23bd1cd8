"""Names for the ids ticket operations store, as the forms showed them (bulkops.labels)."""

from django.contrib.auth import get_user_model

from .models import Category


def user_names(ids):
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))


def category_names(ids):
    return dict(Category.objects.filter(pk__in=ids).values_list("pk", "name"))


VALUE_NAMES = {"assignee_id": user_names, "category_id": category_names}
