"""Operator actions from the console: parse the form, call the action layer, report the result.

Permission checks and the audit entry are the action layer's
(:mod:`lucent_admin.operations.actions`); every result is answered by :func:`respond`: a
denied attempt is a 403, any other outcome a message and a redirect (the job's page when
one was queued).
"""
from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from lucent_admin.console import contexts
from lucent_admin.console.forms import AcknowledgeForm, ConsistencyCheckForm, RetryParkedForm, UserLookupForm
from lucent_admin.console.permissions import console_page
from lucent_admin.operations import actions
from lucent_admin.operations.audit import Actor, Result
from projections.readmodels import PROJECTIONS


def _form_errors(form: Form) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


def respond(request: HttpRequest, result: Result, failed: str, back: str, done: str | None = None) -> HttpResponse:
    """The console's one answer to an action's result: 403 for a denied attempt; otherwise the result's message (a
    failure's after ``failed``, when given) and a redirect — to ``done`` (default ``back``) when it succeeded, else
    to ``back`` — as a client redirect for htmx."""
    if result.denied:
        raise PermissionDenied(result.message)
    if result.ok:
        messages.success(request, result.message)
    else:
        messages.error(request, f"{failed}: {result.message}" if failed else result.message)
    url = (done or back) if result.ok else back
    return HttpResponseClientRedirect(url) if getattr(request, "htmx", False) else redirect(url)


def job_page(result: Result) -> str | None:
    """The page of the job ``result`` queued (None if it queued none)."""
    return reverse("console:job", args=[result.job]) if result.job is not None else None


def _report(request: HttpRequest, result: Result, failed: str, url_name: str) -> HttpResponse:
    return respond(request, result, failed, reverse(url_name))


@require_POST
def acknowledge_alert(request: HttpRequest) -> HttpResponse:
    form = AcknowledgeForm(request.POST)
    valid = form.is_valid()
    data = form.cleaned_data if valid else {k: request.POST.get(k, "")[:64] for k in ("user_id", "alert_id")}
    result = actions.do_acknowledge_alert(Actor.of(request.user), data["user_id"], data["alert_id"],
                                          data.get("note", ""), invalid="" if valid else _form_errors(form))
    return _report(request, result, f"Alert {data['alert_id']} not acknowledged".replace("  ", " "), "console:risk")


def _event_action(request: HttpRequest, do: Callable[..., Result], failed: str) -> HttpResponse:
    form = RetryParkedForm(request.POST)
    valid = form.is_valid()
    projection = form.cleaned_data["projection"] if valid else request.POST.get("projection", "")[:32]
    event_id = str(form.cleaned_data["event_id"]) if valid else request.POST.get("event_id", "")[:300]
    result = do(Actor.of(request.user), projection, event_id, invalid="" if valid else _form_errors(form))
    return _report(request, result, failed.format(event_id=event_id).replace("  ", " "), "console:projections")


@require_POST
def retry_parked(request: HttpRequest) -> HttpResponse:
    return _event_action(request, actions.do_retry_parked, "Parked event {event_id} not retried")


@require_POST
def park_bad_event(request: HttpRequest) -> HttpResponse:
    return _event_action(request, actions.do_park_bad_event, "Event {event_id} not parked")


@require_POST
def resync(request: HttpRequest) -> HttpResponse:
    projection = request.POST.get("projection", "")
    invalid = "" if projection in PROJECTIONS else f"projection: must be one of {', '.join(PROJECTIONS)}"
    result = actions.do_resync(Actor.of(request.user), projection[:32], invalid)
    return _report(request, result, f"{projection[:32]} not resynced", "console:projections")


@require_POST
def dismiss_recovery_alert(request: HttpRequest) -> HttpResponse:
    projection = request.POST.get("projection", "")[:32]
    result = actions.do_dismiss(Actor.of(request.user), projection)
    return _report(request, result, f"Recovery alert of {projection} not dismissed", "console:overview")


@require_POST
def rollback(request: HttpRequest, projection: str) -> HttpResponse:
    result = actions.do_rollback(Actor.of(request.user), projection[:32], None)  # one click (and the browser's confirm)
    return respond(request, result, f"{projection[:32]} not rolled back", reverse("console:projections"), job_page(result))


@require_POST
def drop_generation(request: HttpRequest, projection: str, generation: int) -> HttpResponse:
    """Drop a generation (a job: its page), or back to the Projections page saying why not / that it is gone."""
    result = actions.do_drop_generation(Actor.of(request.user), projection[:32], generation)
    return respond(request, result, f"Generation {generation} of {projection[:32]} not dropped",
                   reverse("console:projections"), job_page(result))


@require_POST
def rebuild_user(request: HttpRequest) -> HttpResponse:
    form = UserLookupForm({"user": request.POST.get("user_id", "")})
    valid = form.is_valid()
    user = form.cleaned_data["user"] if valid else request.POST.get("user_id", "")[:64]
    result = actions.do_rebuild_users(Actor.of(request.user), [user], invalid="" if valid else _form_errors(form))
    back = f"{reverse('console:user')}?{urlencode({'user': user})}" if valid else reverse("console:jobs")
    return respond(request, result, f"{user} not rebuilt", back)


@require_POST
def check_consistency(request: HttpRequest) -> HttpResponse:
    form = ConsistencyCheckForm(request.POST)
    valid = form.is_valid()
    data = form.cleaned_data if valid else {}
    scope = data.get("scope", "")
    user = data.get("user_id") or request.POST.get("user_id", "")[:64]
    result = actions.do_check_consistency(Actor.of(request.user), data.get("projection", ""),
                                          [user] if scope == "user" else [], (data.get("sample") or 0) if scope == "sample" else 0,
                                          scope == "all", invalid="" if valid else _form_errors(form))
    back = (f"{reverse('console:user')}?{urlencode({'user': user})}" if request.POST.get("scope") == "user" and user
            else reverse("console:consistency"))
    return respond(request, result, "Consistency not checked", back, job_page(result))


@require_POST
def repair(request: HttpRequest, job_id: int) -> HttpResponse:
    result = actions.do_repair(Actor.of(request.user), job_id)
    return respond(request, result, "Not repaired", reverse("console:job", args=[job_id]), job_page(result))


@require_POST
def flip_anyway(request: HttpRequest, job_id: int) -> HttpResponse:
    result = actions.do_flip_anyway(Actor.of(request.user), job_id)
    return _report(request, result, f"Job {job_id} not flipped", "console:jobs")


@require_POST
def approve_job(request: HttpRequest, job_id: int) -> HttpResponse:
    result = actions.do_approve_job(Actor.of(request.user), job_id)
    return _report(request, result, f"Job {job_id} not approved", "console:jobs")


@require_POST
def cancel_job(request: HttpRequest, job_id: int) -> HttpResponse:
    result = actions.do_cancel_job(Actor.of(request.user), job_id)
    return respond(request, result, "", reverse("console:job", args=[job_id]))


@require_GET
@console_page
def user_rank(request: HttpRequest) -> HttpResponse:
    form = UserLookupForm(request.GET, auto_id="rank_%s")
    context = {"form": form}
    if form.is_valid():
        context.update(contexts.user_rank(form.cleaned_data["user"]))
    return render(request, "console/partials/user_rank.html", context, status=200 if form.is_valid() else 400)
