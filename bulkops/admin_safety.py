"""The admin's changelists take any lookup from the URL (`?status__exact=…`,
`?created_at__year=…`); a value PostgreSQL or Python's dates cannot take must be a bad
request, not a 500."""

from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import BadRequest
from django.db import DataError, transaction


class SafeChangelistMixin:
    """For every ModelAdmin: a filter value that fails while the changelist is built (a NUL
    PostgreSQL will not compare, a year past 9999 no date can hold) answers 400 — also where
    Django would redirect to the unfiltered list (`?e=1`), which hides that the filter failed."""

    def get_changelist_instance(self, request):
        try:
            # A savepoint: a statement PostgreSQL refused must not leave the request's
            # transaction (the admin's, or a test's) unusable.
            with transaction.atomic():
                return super().get_changelist_instance(request)
        except (DataError, ValueError, OverflowError, IncorrectLookupParameters) as exc:
            raise BadRequest(f"A filter value cannot be used: {exc}") from exc
