"""Cross-cutting API pieces every app's API uses."""

from datetime import UTC, timedelta

from django.utils import timezone
from rest_framework import serializers

# PostgreSQL stores NUL in neither text nor jsonb: every door refuses it with this message.
NUL = "\x00"
NUL_MESSAGE = "Text cannot contain NUL (\\u0000) characters."
MAX_IDEMPOTENCY_KEY = 255  # the column's length


class TextField(serializers.CharField):
    """A string and only a string: DRF's CharField would quietly take 12 as "12"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer and only that: DRF's IntegerField would take "50", 50.0 and "4300" as
    numbers, and a client that sent a string may have meant something else."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false and only that: DRF's BooleanField would take "yes", "on", 1 and "0"."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class RunAtField(serializers.DateTimeField):
    """When a scheduled operation starts: an ISO 8601 time, in the future, at most
    MAX_SCHEDULE_DAYS ahead (a time without an offset is UTC)."""

    MAX_SCHEDULE_DAYS = 30
    default_error_messages = {
        "invalid": "Give an ISO 8601 time, e.g. 2026-12-24T22:00:00Z.",
        "past": "Give a time in the future.",
        "too_far": f"Give a time at most {MAX_SCHEDULE_DAYS} days ahead.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault(
            "help_text", f"Start then, not now (status `scheduled`): ISO 8601, future, ≤ {self.MAX_SCHEDULE_DAYS} days"
        )
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid")
        try:
            when = super().to_internal_value(value).astimezone(UTC)
        except (OverflowError, ValueError):  # past year 9999 in UTC, or an offset Python refuses
            self.fail("overflow")
        now = timezone.now()
        if when <= now:
            self.fail("past")
        if when > now + timedelta(days=self.MAX_SCHEDULE_DAYS):
            self.fail("too_far")
        return when


def idempotency_key(request):
    """The request's Idempotency-Key header, or None; 400 for one the column cannot store."""
    key = request.headers.get("Idempotency-Key") or None
    if key and len(key) > MAX_IDEMPOTENCY_KEY:
        raise serializers.ValidationError({"Idempotency-Key": [f"At most {MAX_IDEMPOTENCY_KEY} characters."]})
    if key and NUL in key:
        raise serializers.ValidationError({"Idempotency-Key": [NUL_MESSAGE]})
    return key
