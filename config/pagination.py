from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """DRF's `{count, next, previous, results}` envelope with `limit` capped: uncapped, it goes
    straight into SQL (a 20-digit limit is a database error, a large one a huge response)."""

    max_limit = 1000
