"""The `{operations|items, total, has_more, next, previous}` envelope of the operation and item lists."""

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response


class EnvelopePagination(LimitOffsetPagination):
    """The seed-001 envelope: {<key>: [...], total, has_more, next, previous}."""

    key = "operations"
    default_limit = 10
    max_limit = 1000

    def get_paginated_response(self, data):
        return Response(
            {
                self.key: data,
                "total": self.count,
                "has_more": self.offset + self.limit < self.count,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
            }
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": [self.key, "total", "has_more", "next", "previous"],
            "properties": {
                self.key: schema,
                "total": {"type": "integer"},
                "has_more": {"type": "boolean"},
                "next": {"type": "string", "format": "uri", "nullable": True},
                "previous": {"type": "string", "format": "uri", "nullable": True},
            },
        }


class OperationPagination(EnvelopePagination):
    key = "operations"


class ItemPagination(EnvelopePagination):
    key = "items"
    default_limit = 100
