"""Who a user may see by name (SPEC §16, directory privacy): the user pickers and the
"No active user with id N" message show no one else, so the user list cannot be read or
its ids probed through them."""

from django.contrib.auth import get_user_model
from django.db.models import Q

from .models import Ticket, is_agent


def visible_people(viewer):
    """Active users `viewer` may name: everyone for agents and staff (they assign to anyone);
    for anyone else themselves and the requesters and assignees of the tickets they can see —
    the names their ticket list shows them already. No viewer — a caller acting for no one in
    particular (the engine re-checking its own data, the staff-only admin) — sees everyone."""
    users = get_user_model().objects.filter(is_active=True)
    if viewer is None or is_agent(viewer):
        return users
    tickets = Ticket.objects.visible_to(viewer)
    return users.filter(
        Q(pk=viewer.pk) | Q(pk__in=tickets.values("requester_id")) | Q(pk__in=tickets.values("assignee_id"))
    )
