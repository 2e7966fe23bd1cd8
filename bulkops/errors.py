"""Per-item error codes: stable, documented, shared by single endpoints and the bulk engine."""

from rest_framework import exceptions, status

NOT_FOUND = "NOT_FOUND"
DUPLICATE_ROW = "DUPLICATE_ROW"  # an import's row whose key an earlier row of the file has
PERMISSION_DENIED = "PERMISSION_DENIED"
VALIDATION_ERROR = "VALIDATION_ERROR"
INVALID_TRANSITION = "INVALID_TRANSITION"
CONFLICT = "CONFLICT"
LOCK_TIMEOUT = "LOCK_TIMEOUT"
ROLLED_BACK = "ROLLED_BACK"
CANCELLED = "CANCELLED"
REJECTED = "REJECTED"  # the operation was rejected by an approver before it ran
INTERNAL_ERROR = "INTERNAL_ERROR"
# Operation-level refusals (never on an item).
TOO_MANY_ACTIVE_OPERATIONS = "TOO_MANY_ACTIVE_OPERATIONS"
IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"

HTTP_STATUS = {
    NOT_FOUND: status.HTTP_404_NOT_FOUND,
    DUPLICATE_ROW: status.HTTP_409_CONFLICT,
    PERMISSION_DENIED: status.HTTP_403_FORBIDDEN,
    VALIDATION_ERROR: status.HTTP_400_BAD_REQUEST,
    INVALID_TRANSITION: status.HTTP_400_BAD_REQUEST,
    CONFLICT: status.HTTP_409_CONFLICT,
    LOCK_TIMEOUT: status.HTTP_409_CONFLICT,
    ROLLED_BACK: status.HTTP_409_CONFLICT,
    CANCELLED: status.HTTP_409_CONFLICT,
    REJECTED: status.HTTP_409_CONFLICT,
    INTERNAL_ERROR: status.HTTP_500_INTERNAL_SERVER_ERROR,
    TOO_MANY_ACTIVE_OPERATIONS: status.HTTP_429_TOO_MANY_REQUESTS,
    IDEMPOTENCY_KEY_REUSED: status.HTTP_422_UNPROCESSABLE_ENTITY,
}


class ItemError(Exception):
    """A refusal of one change to one record; the engine records it on the item."""

    code = INTERNAL_ERROR
    default_message = "Internal error"

    def __init__(self, message=None, code=None, details=None):
        self.message = message or self.default_message
        if code:
            self.code = code
        self.details = details  # {field: [messages]}, stored on the item as result.error_details
        super().__init__(self.message)

    @property
    def http_status(self):
        return HTTP_STATUS[self.code]

    def as_api_exception(self):
        exc = exceptions.APIException(self.message)
        exc.status_code = self.http_status
        exc.error_code = self.code
        return exc


class NotFound(ItemError):
    code = NOT_FOUND
    default_message = "Not found"


class PermissionDenied(ItemError):
    code = PERMISSION_DENIED
    default_message = "Insufficient permissions"


class ValidationFailed(ItemError):
    code = VALIDATION_ERROR
    default_message = "Invalid value"


class InvalidTransition(ItemError):
    code = INVALID_TRANSITION
    default_message = "Invalid status transition"


class Conflict(ItemError):
    code = CONFLICT
    default_message = "The record changed since it was read"


class TooManyActive(ItemError):
    code = TOO_MANY_ACTIVE_OPERATIONS
    default_message = "Too many pending or running operations; wait for one to finish"


class IdempotencyKeyReused(ItemError):
    code = IDEMPOTENCY_KEY_REUSED
    default_message = "This Idempotency-Key was used with a different request body"


# --- errors the database raises -----------------------------------------------------------

# PostgreSQL says these are worth retrying; after the last try an item fails with the code.
TRANSIENT = {"40001": CONFLICT, "40P01": CONFLICT, "55P03": LOCK_TIMEOUT}


def sqlstate(exc):
    return getattr(exc.__cause__, "sqlstate", None) or getattr(exc, "sqlstate", None)


def first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


UNIQUE_VIOLATION = "23505"


def from_database(exc):
    """The item error for a write the database refused (a constraint, a trigger): a unique
    violation is a CONFLICT (the record exists already: another request created it between
    the check and the write); other data and integrity errors (22xxx, 23xxx) are
    VALIDATION_ERROR; anything else INTERNAL_ERROR."""
    state = sqlstate(exc) or ""
    if state == UNIQUE_VIOLATION:
        code = CONFLICT
    elif state[:2] in {"22", "23"}:
        code = VALIDATION_ERROR
    else:
        code = INTERNAL_ERROR
    return ItemError(first_line(exc), code=code)


def first_message(data, prefix=""):
    """The first leaf message of a DRF validation error, prefixed with where it is."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "non_field_errors":
                where = prefix
            elif isinstance(key, int) or str(key).isdigit():  # DRF reports list errors by index
                where = f"{prefix}[{key}] "
            else:
                where = f"{prefix}{key}: "
            return first_message(value, where)
    if isinstance(data, list) and data:
        for index, value in enumerate(data):
            if value:
                nested = isinstance(value, (dict, list))
                return first_message(value, f"{prefix}[{index}] " if nested else prefix)
    return f"{prefix}{data}".strip()
