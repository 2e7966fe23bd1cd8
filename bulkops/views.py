"""The pages: the history of operations, and one operation's live progress with its buttons.

Thin on purpose: who sees what, cancel, pause, resume, revert and retry are the services' (as for the API);
another user's or an unknown operation is a 404 here as everywhere.
"""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from . import conf, control, errors, followups, imports, labels, registry, services
from .filtersets import BulkOperationFilterSet
from .forms import (
    DATA,
    START,
    ImportForm,
    OnceForm,
    RejectForm,
    RetryForm,
    RevertForm,
    StartImportForm,
    label_of,
    menu,
    page_filters,
)
from .models import APPROVE_PERMISSION, BulkOperation, Execution, ItemStatus, Mode, Status
from .representation import MAX_ERRORS, operation_links

RESUBMITTED = "This form was submitted before: this is the operation it started; nothing new was started."
PAGE_SIZE = 25
REFRESH_SECONDS = 3  # how often the page reloads itself while running, with JavaScript off


def filter_query(params):
    """A list's filters as a query string, without the page number (for the page links)."""
    query = params.copy()
    query.pop("page", None)
    return query.urlencode()


def history_filters(filterset, visible, user):
    """Menus of what the history holds; the user filter for staff only (others see their own)."""
    form = page_filters(filterset, hidden=() if user.is_staff else ("user",))
    kinds = list(visible.order_by().values_list("resource_type", "operation_type").distinct())
    labels = {name: label_of(resource, name) for resource, name in kinds}
    form.fields["operation_type"].widget = menu(sorted(labels.items(), key=lambda choice: choice[1]))
    form.fields["resource_type"].widget = menu((resource, resource) for resource in sorted({r for r, _ in kinds}))
    if user.is_staff:
        people = get_user_model().objects.filter(bulk_operations__isnull=False).distinct().order_by("username")
        form.fields["user"].widget = menu((str(person.pk), person.get_username()) for person in people)


def labelled(page):
    """The operations of a page, each with its label and data summary in words."""
    for op in page:
        op.label = label_of(op.resource_type, op.operation_type)
        op.summary = labels.shown_data(registry.get(op.resource_type, op.operation_type), op.operation_data)
    return page


@login_required
def operation_list(request):
    visible = BulkOperation.objects.visible_to(request.user).select_related("user")
    filterset = BulkOperationFilterSet(request.GET, queryset=visible)
    history_filters(filterset, visible, request.user)
    operations = filterset.qs.order_by("-created_at") if filterset.is_valid() else visible.none()
    page = labelled(Paginator(operations, PAGE_SIZE).get_page(request.GET.get("page")))
    context = {"filterset": filterset, "page": page, "query": filter_query(request.GET)}
    return render(request, "bulkops/operation_list.html", context)


@login_required
def awaiting_approval(request):
    """For approvers: every user's operations awaiting approval, oldest first, each with its
    Approve and Reject buttons (not on the approver's own)."""
    if not request.user.has_perm(APPROVE_PERMISSION):
        raise PermissionDenied
    waiting = BulkOperation.objects.filter(status=Status.AWAITING_APPROVAL).select_related("user")
    page = labelled(Paginator(waiting.order_by("created_at"), PAGE_SIZE).get_page(request.GET.get("page")))
    for op in page:
        op.forms = review_forms(request.user, op)
    return render(request, "bulkops/approvals.html", {"page": page, "threshold": conf.APPROVAL_THRESHOLD})


def review_forms(user, op):
    """The Approve and Reject forms `user` may submit for `op`, or None."""
    if op.status != Status.AWAITING_APPROVAL or op.user_id == user.pk or not user.has_perm(APPROVE_PERMISSION):
        return None
    return {"approve": OnceForm(purpose=f"approve:{op.pk}"), "reject": RejectForm(op_id=op.pk)}


def eta_text(op):
    """How long until it finishes, roughly (progress.js words it the same way)."""
    if op.is_finished or op.estimated_completion is None:
        return "—"
    seconds = max(0, round((op.estimated_completion - timezone.now()).total_seconds()))
    return f"about {seconds} s" if seconds < 120 else f"about {round(seconds / 60)} min"


def revertible(op):
    """Whether `op` can still be reverted: finished, changed something, not reverted yet."""
    return (
        op.is_finished
        and op.successful_items > 0
        and not op.dry_run
        and registry.get(op.resource_type, followups.REVERT) is not None
        and followups.done_follow_up(op.reverted_by) is None
    )


def preview_of_revert(op):
    """For a finished dry-run revert (a revert's preview): the operation it would revert."""
    return op.reverts if op.dry_run and op.is_finished and op.reverts is not None else None


def retry_choices(op):
    """{error code: count} a retry of `op` could take; empty once it was retried, and for a
    revert's preview (its failures are the revert's to show, not to retry)."""
    if not op.is_finished or (op.dry_run and op.reverts_id) or followups.done_follow_up(op.retried_by) is not None:
        return {}
    return followups.retry_choices(op)


def pausable(op):
    return op.status in control.PAUSABLE and op.execution == Execution.ASYNC and op.mode == Mode.PARTIAL


@login_required
def operation_detail(request, op_id):
    visible = BulkOperation.objects.visible_to(request.user).select_related(
        "user", "reverts", "retry_of", "approved_by"
    )
    op = get_object_or_404(visible, pk=op_id)
    counts = retry_choices(op)
    original = preview_of_revert(op)
    context = {
        "op": op,
        "label": label_of(op.resource_type, op.operation_type),
        "data": labels.shown_data(registry.get(op.resource_type, op.operation_type), op.operation_data),
        "errors": op.items.filter(status=ItemStatus.FAILED).order_by("position")[:MAX_ERRORS],
        "eta": eta_text(op),
        "links": operation_links(request, op),
        "status_url": reverse("bulk-operation-detail", kwargs={"pk": op.pk}),
        "refresh_seconds": None if op.is_finished or op.status == Status.PAUSED else REFRESH_SECONDS,
        "can_revert": revertible(op),
        "revert_of": original,
        # From a preview that would restore something, of an operation not reverted since.
        "can_start_revert": original is not None and op.successful_items > 0 and revertible(original),
        "followers": [*op.reverted_by.all(), *op.retried_by.all()],
        "import_preview": import_preview(op),
        "owner": request.user.is_staff or op.user_id == request.user.pk,  # may cancel, revert, retry
        "review": review_forms(request.user, op),
        "forms": {
            "cancel": OnceForm(purpose=f"cancel:{op.pk}"),
            "pause": OnceForm(purpose=f"pause:{op.pk}") if pausable(op) else None,
            "resume": OnceForm(purpose=f"resume:{op.pk}") if op.status == Status.PAUSED else None,
            "preview": RevertForm(op_id=op.pk, preview=True),
            "revert": RevertForm(op_id=original.pk) if original else None,
            "retry": RetryForm(op_id=op.pk, counts=counts) if counts else None,
            "start_import": StartImportForm(preview_id=op.pk),
        },
    }
    return render(request, "bulkops/operation_detail.html", context)


def opened(request, op, created, started=""):
    """The page of the operation a form submit started (saying `started`), or of the one an
    earlier submit of the same form started (not `created`)."""
    if created:
        messages.success(request, started)
    else:
        messages.info(request, RESUBMITTED)
    return redirect("bulkops:operation", op_id=op.pk)


def resubmitted(request, form):
    """The page of what an earlier submit of `form` started; None on a first submit."""
    earlier = form.earlier(request.user)
    return None if earlier is None else opened(request, earlier, created=False)


def restarted(request):
    """The page of what an earlier submit of this start form started, found before anything
    else: by now its selection may match nothing (a restore already done)."""
    return resubmitted(request, OnceForm(request.POST, prefix=DATA, purpose=START))


@login_required
@require_POST
def cancel(request, op_id):
    if not OnceForm(request.POST, purpose=f"cancel:{op_id}").first_submit(request.session):
        return redirect("bulkops:operation", op_id=op_id)  # the first submit cancelled it and said so
    try:
        op = services.cancel_operation(request.user, op_id)
    except errors.NotFound:
        raise Http404("Bulk operation not found") from None
    except errors.Conflict as exc:
        messages.info(request, f"Nothing to cancel: {exc.message[0].lower()}{exc.message[1:]}.")
    else:
        messages.success(request, "Cancelled." if op.is_finished else "Cancelling: it stops after the current chunk.")
    return redirect("bulkops:operation", op_id=op_id)


# What the Pause and Resume buttons call, and what the page says after.
CONTROLS = {
    "pause": (control.pause_operation, "Paused: each slice stops after its current chunk."),
    "resume": (control.resume_operation, "Resumed."),
}


@login_required
@require_POST
def change(request, op_id, verb):
    """Pause or resume; a resubmit of the same form (Back, a double click) does nothing more."""
    if not OnceForm(request.POST, purpose=f"{verb}:{op_id}").first_submit(request.session):
        return redirect("bulkops:operation", op_id=op_id)
    service, done = CONTROLS[verb]
    try:
        service(request.user, op_id)
    except errors.NotFound:
        raise Http404("Bulk operation not found") from None
    except errors.Conflict as exc:
        messages.info(request, f"Nothing to {verb}: {exc.message[0].lower()}{exc.message[1:]}.")
    else:
        messages.success(request, done)
    return redirect("bulkops:operation", op_id=op_id)


def follow_up(request, op_id, start, form, done):
    """Revert or retry: a new operation made from this one, whose page we go to. Another
    user's operation is a 404 before the form is judged."""
    try:
        services.get_operation(request.user, op_id)
        op, created = start(request.user, op_id, **form.options(), **form.once())
    except errors.NotFound:
        raise Http404("Bulk operation not found") from None
    except errors.ItemError as exc:
        # Two submits at once: "runs once per original" may refuse this one before the
        # Idempotency-Key check could see the first's operation, committed meanwhile.
        if earlier := resubmitted(request, form):
            return earlier
        messages.error(request, exc.message)
        return redirect("bulkops:operation", op_id=op_id)
    return opened(request, op, created, f"{done} {labels.count_of(op.total_items, 'items')}.")


@login_required
@require_POST
def revert(request, op_id):
    """The revert, or its preview (a dry-run revert) when the form says `dry_run`."""
    form = RevertForm.posted(request.POST, op_id)
    done = "Previewing the revert of" if form.preview else "Reverting"
    return follow_up(request, op_id, followups.revert_operation, form, done)


@login_required
@require_POST
def retry(request, op_id):
    return follow_up(request, op_id, followups.retry_operation, RetryForm(request.POST, op_id=op_id), "Retrying")


def import_preview(op):
    """For an import's dry run: what starting it would do (None for any other operation)."""
    if not (op.dry_run and imports.is_import(op)):
        return None
    return {"failed": op.failed_items, "can_start": op.is_finished and op.successful_items > 0}


@login_required
def import_form(request, resource):
    """/<resource>/import/: upload a file; its preview (a dry run) opens on the operation page,
    with the Start button."""
    definition = registry.get(resource, imports.IMPORT)
    form = ImportForm(definition, request.POST or None, request.FILES or None)
    if request.method == "POST":
        if earlier := resubmitted(request, form):
            return earlier
        if form.is_valid():
            op, created = form.preview(request.user)
            if op is not None:
                return opened(request, op, created, "Preview: nothing is written until you start the import.")
    context = {"form": form, "label": f"Import {labels.nouns_of(definition.resource)[1]}", "resource": resource}
    return render(request, "bulkops/import_form.html", context)


@login_required
@require_POST
def start_import(request, op_id):
    form = StartImportForm(request.POST, preview_id=op_id)
    if earlier := resubmitted(request, form):
        return earlier
    try:
        preview = services.get_operation(request.user, op_id)
        op, created = imports.start_from_preview(request.user, preview, **form.once())
    except errors.NotFound:
        raise Http404("Bulk operation not found") from None
    except errors.ItemError as exc:
        messages.error(request, exc.message)
        return redirect("bulkops:operation", op_id=op_id)
    return opened(request, op, created, f"Importing {labels.count_of(op.total_items, 'items')}.")


def reviewed(request, op_id, review, done):
    """Approve or reject, then the operation's page saying what happened."""
    try:
        op = review()
    except errors.NotFound:
        raise Http404("Bulk operation not found") from None
    except errors.ItemError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done(op))
    return redirect("bulkops:operation", op_id=op_id)


def approved_text(op):
    if op.status == Status.SCHEDULED:
        return f"Approved: it starts at {timezone.localtime(op.run_at):%Y-%m-%d %H:%M:%S %Z}."
    return "Approved: it starts now."


@login_required
@require_POST
def approve(request, op_id):
    if not OnceForm(request.POST, purpose=f"approve:{op_id}").first_submit(request.session):
        return redirect("bulkops:operation", op_id=op_id)  # the first submit approved it and said so
    return reviewed(request, op_id, lambda: services.approve_operation(request.user, op_id), approved_text)


@login_required
@require_POST
def reject(request, op_id):
    form = RejectForm(request.POST, op_id=op_id)
    if not form.is_valid():
        messages.error(request, f"Not rejected: {form.errors['reason'][0].lower()} Say why: the creator sees it.")
        return redirect("bulkops:operation", op_id=op_id)
    if not form.first_submit(request.session):
        return redirect("bulkops:operation", op_id=op_id)
    reason = form.cleaned_data["reason"]
    return reviewed(
        request, op_id, lambda: services.reject_operation(request.user, op_id, reason), lambda op: "Rejected."
    )
