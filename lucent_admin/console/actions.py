"""Operator actions: authenticated, permission-checked, validated, audited; each calls one function."""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from lucent_admin.console import contexts
from lucent_admin.console.forms import AcknowledgeForm, RetryParkedForm, UserLookupForm
from lucent_admin.console.permissions import permission_required, staff_required
from lucent_admin.operations import audit
from lucent_admin.operations.models import AuditEntry
from projections import commands
from projections.errors import ProjectionError


def _back(request: HttpRequest, url_name: str) -> HttpResponse:
    """Back to the page: a client-side redirect for htmx requests, so the message shows."""
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(reverse(url_name))
    return redirect(url_name)


def _form_errors(form: AcknowledgeForm | RetryParkedForm) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


@require_POST
@staff_required
@permission_required("operations.acknowledge_alert", action="risk.acknowledge")
def acknowledge_alert(request: HttpRequest) -> HttpResponse:
    form = AcknowledgeForm(request.POST)
    if not form.is_valid():
        audit.record(request.user, "risk.acknowledge", request.POST.get("alert_id", "")[:64],
                     AuditEntry.Outcome.FAILED, _form_errors(form))
        messages.error(request, f"Alert not acknowledged: {_form_errors(form)}")
        return _back(request, "console:risk")
    data = form.cleaned_data
    target = f"{data['user_id']}/{data['alert_id']}"
    try:
        position = commands.acknowledge_alert(
            contexts.event_store(), data["user_id"], data["alert_id"], request.user.get_username(), data["note"],
        )
    except ProjectionError as exc:
        audit.record(request.user, "risk.acknowledge", target, AuditEntry.Outcome.FAILED, str(exc))
        messages.error(request, f"Alert {data['alert_id']} not acknowledged: {exc}")
        return _back(request, "console:risk")
    audit.record(request.user, "risk.acknowledge", target, note=data["note"], position=position)
    messages.success(request, f"Alert {data['alert_id']} of {data['user_id']} acknowledged.")
    return _back(request, "console:risk")


def _event_action(
    request: HttpRequest, action: str, do: Callable[[str, str], None], failed: str, done: str,
) -> HttpResponse:
    """Validate (projection, event id), call ``do``, audit the outcome and say it; ``failed``/``done``
    are messages formatted with ``projection`` and ``event_id``."""
    form = RetryParkedForm(request.POST)
    if not form.is_valid() or form.cleaned_data["projection"] not in settings.LUCENT_PROJECTIONS:
        detail = _form_errors(form) or "projection: unknown projection"
        audit.record(request.user, action, request.POST.get("event_id", "")[:64], AuditEntry.Outcome.FAILED, detail)
        messages.error(request, f"{' '.join(failed.format(projection='', event_id='').split())}: {detail}")
        return _back(request, "console:projections")
    projection, event_id = form.cleaned_data["projection"], str(form.cleaned_data["event_id"])
    try:
        do(projection, event_id)
    except ProjectionError as exc:
        audit.record(request.user, action, f"{projection}/{event_id}", AuditEntry.Outcome.FAILED, str(exc))
        messages.error(request, f"{failed.format(projection=projection, event_id=event_id)}: {exc}")
        return _back(request, "console:projections")
    audit.record(request.user, action, f"{projection}/{event_id}")
    messages.success(request, done.format(projection=projection, event_id=event_id))
    return _back(request, "console:projections")


@require_POST
@staff_required
@permission_required("operations.retry_parked_event", action="parked.retry")
def retry_parked(request: HttpRequest) -> HttpResponse:
    return _event_action(request, "parked.retry", contexts.retry_parked, "Parked event {event_id} not retried",
                         "Retry of parked event {event_id} requested; the {projection} projector applies it next.")


@require_POST
@staff_required
@permission_required("operations.park_bad_event", action="parked.decide")
def park_bad_event(request: HttpRequest) -> HttpResponse:
    return _event_action(request, "parked.decide", contexts.park_bad_event, "Event {event_id} not parked",
                         "Event {event_id} will be parked; the {projection} projector resumes past it.")


@require_GET
@staff_required
def user_rank(request: HttpRequest) -> HttpResponse:
    form = UserLookupForm(request.GET, auto_id="rank_%s")
    context = {"form": form}
    if form.is_valid():
        context.update(contexts.user_rank(form.cleaned_data["user"]))
    return render(request, "console/partials/user_rank.html", context, status=200 if form.is_valid() else 400)
