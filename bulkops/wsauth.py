"""Short-lived signed tickets for WebSocket URLs: never the long-lived token in a URL."""

from django.core import signing

from . import conf

SALT = "bulkops.websocket"


def make_ticket(user, op_id):
    return signing.TimestampSigner(salt=SALT).sign(f"{user.pk}:{op_id}")


def read_ticket(value, op_id):
    """The user id the ticket was issued to for this operation, or None if invalid or expired."""
    try:
        raw = signing.TimestampSigner(salt=SALT).unsign(value, max_age=conf.WS_TICKET_MAX_AGE)
    except signing.BadSignature:
        return None
    user_id, _, ticket_op = raw.partition(":")
    return int(user_id) if ticket_op == str(op_id) else None
