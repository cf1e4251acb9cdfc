"""Operator actions from the console: read the posted text into the action's arguments, call the action layer,
report the result.

Permission checks, the check of every field (:mod:`lucent_admin.operations.fields`) and the audit entry are the
action layer's (:mod:`lucent_admin.operations.actions`): a view only reads text, bounded in length, and hands it
on; text that cannot become an argument at all (a sample that is not a number) is refused through the same layer
(:func:`~lucent_admin.operations.audit.refuse_input`). Every result is answered by :func:`respond`: a denied
attempt is a 403, any other outcome a message and a redirect (the job's page when one was queued).
"""
from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from lucent_admin.console import contexts
from lucent_admin.console.forms import UserLookupForm
from lucent_admin.console.permissions import console_page
from lucent_admin.operations import actions, fields
from lucent_admin.operations.audit import CHECK_CONSISTENCY, Actor, Result, refuse_input
from projections.events import NOTE_MAX

ID_TEXT = 65  # one more than an id may have: a longer one is refused as too long, not cut to a valid one


def posted(request: HttpRequest, name: str, most: int = ID_TEXT) -> str:
    """The posted field ``name`` as text, at most ``most`` characters (the action layer checks what it holds)."""
    return str(request.POST.get(name, "")).strip()[:most]


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
    user_id, alert_id = posted(request, "user_id"), posted(request, "alert_id")
    result = actions.do_acknowledge_alert(Actor.of(request.user), user_id, alert_id, posted(request, "note", NOTE_MAX + 1))
    return _report(request, result, f"Alert {alert_id} not acknowledged".replace("  ", " "), "console:risk")


def _event_action(request: HttpRequest, do: Callable[[Actor, str, str], Result], failed: str) -> HttpResponse:
    projection, event_id = posted(request, "projection", 32), posted(request, "event_id", 300)
    result = do(Actor.of(request.user), projection, event_id)
    return _report(request, result, failed.format(event_id=event_id).replace("  ", " "), "console:projections")


@require_POST
def retry_parked(request: HttpRequest) -> HttpResponse:
    return _event_action(request, actions.do_retry_parked, "Parked event {event_id} not retried")


@require_POST
def park_bad_event(request: HttpRequest) -> HttpResponse:
    return _event_action(request, actions.do_park_bad_event, "Event {event_id} not parked")


@require_POST
def resync(request: HttpRequest) -> HttpResponse:
    projection = posted(request, "projection", 32)
    result = actions.do_resync(Actor.of(request.user), projection)
    return _report(request, result, f"{projection} not resynced", "console:projections")


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
    user = posted(request, "user_id")
    result = actions.do_rebuild_users(Actor.of(request.user), [user])
    known = not fields.identifier("User id", user)
    back = f"{reverse('console:user')}?{urlencode({'user': user})}" if known else reverse("console:jobs")
    return respond(request, result, f"{user} not rebuilt", back)


SCOPES = ("user", "sample", "all")


@require_POST
def check_consistency(request: HttpRequest) -> HttpResponse:
    """Check one user, a rolling sample or everything, in one projection or all (the Consistency page's form)."""
    actor = Actor.of(request.user)
    scope, projection, user = posted(request, "scope", 8), posted(request, "projection", 32), posted(request, "user_id")
    sample_text = posted(request, "sample", 12)
    unreadable = {"scope": "" if scope in SCOPES else f"Scope must be one of {', '.join(SCOPES)}.",
                  "user_id": "Give the user id to check." if scope == "user" and not user else "",
                  "sample": ("" if scope != "sample" or sample_text.isdigit() else
                             "Give how many users to check (a whole number)." if not sample_text else
                             f"Sample must be a whole number of users, not {sample_text!r}.")}
    if any(unreadable.values()):
        result = refuse_input(actor, CHECK_CONSISTENCY, user if scope == "user" else scope, fields.problems(**unreadable))
    else:
        result = actions.do_check_consistency(actor, projection, [user] if scope == "user" else [],
                                              int(sample_text) if scope == "sample" else 0, scope == "all")
    back = (f"{reverse('console:user')}?{urlencode({'user': user})}" if scope == "user" and user
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
