"""Cross-cutting API pieces every app's API uses."""

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


def idempotency_key(request):
    """The request's Idempotency-Key header, or None; 400 for one the column cannot store."""
    key = request.headers.get("Idempotency-Key") or None
    if key and len(key) > MAX_IDEMPOTENCY_KEY:
        raise serializers.ValidationError({"Idempotency-Key": [f"At most {MAX_IDEMPOTENCY_KEY} characters."]})
    if key and NUL in key:
        raise serializers.ValidationError({"Idempotency-Key": [NUL_MESSAGE]})
    return key
