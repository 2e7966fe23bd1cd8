"""/tickets/: the ticket list, and a bulk action started from it in three steps: the
action's form, a confirmation that says how many tickets will change and shows what changes
on the first of them, then the start."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from bulkops.filtersets import given_filters
from bulkops.forms import OperationForm, label_of, operation_choices, snapshot_ids
from bulkops.labels import count_of
from bulkops.views import filter_query, opened, restarted

from .filtersets import TicketFilterSet
from .forms import SelectionForm, change_preview, data_choices, list_filters
from .models import Ticket

PAGE_SIZE = 50


@login_required
def ticket_list(request):
    visible = Ticket.objects.visible_to(request.user).select_related("category", "assignee", "requester")
    filterset = TicketFilterSet(given_filters(request.GET), queryset=visible)
    list_filters(filterset, request.user)
    tickets = filterset.qs.order_by("-pk") if filterset.is_valid() else visible.none()
    context = {
        "filterset": filterset,
        "page": Paginator(tickets, PAGE_SIZE).get_page(request.GET.get("page")),
        "query": filter_query(request.GET),
        "operations": operation_choices("tickets", request.user),
    }
    return render(request, "tickets/ticket_list.html", context)


def refuse(request, selection):
    for field, problems in selection.errors.items():
        prefix = "" if field == "__all__" else f"{selection.fields[field].label or field}: "
        messages.error(request, prefix + problems[0])
    return redirect(f"{reverse('tickets:list')}?{selection.data.get('query', '')}")


@login_required
@require_POST
def bulk_action(request):
    """Posted by the list (no step), by the form (step=confirm) and by the confirmation
    (step=start, or step=edit to go back); each step carries the selection along."""
    step = request.POST.get("step")
    if step == "start" and (earlier := restarted(request)):
        return earlier
    selection = SelectionForm(request.user, request.POST)
    if not selection.is_valid():
        return refuse(request, selection)
    form = OperationForm(selection.definition, request.POST if step else None, choices=data_choices(request.user))
    context = {
        "selection": selection,
        "form": form,
        "label": label_of("tickets", selection.definition.name),
        "count": selection.count,
        "back": f"{reverse('tickets:list')}?{selection.cleaned_data['query']}",
    }
    if step in ("confirm", "start") and form.is_valid():
        if step == "start":
            op, created = form.start(request, snapshot_ids(selection.tickets))
            if op is not None:
                started = count_of(op.total_items, "tickets")
                return opened(request, op, created, f"{context['label']}: started on {started}.")
        context["preview"] = change_preview(selection.definition, selection.tickets, form.operation_data)
        context["more"] = selection.count - len(context["preview"])
        return render(request, "tickets/bulk_confirm.html", context)
    return render(request, "tickets/bulk_form.html", context)
