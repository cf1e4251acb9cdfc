"""Console pages. Views read through projections/queries/ (via contexts), never raw Redis."""
from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from lucent_admin.console.forms import AuditFilterForm, UserLookupForm, form_problems
from lucent_admin.console.permissions import audit_page, console_page, risk_page
from lucent_admin.console.recovery import ThresholdsForm
from lucent_admin.console.widgets import page_widgets, render_widget
from lucent_admin.operations import actions
from lucent_admin.operations.actions import do_change_thresholds
from lucent_admin.operations.audit import CHANGE_THRESHOLDS, Actor, refuse_input
from lucent_admin.operations.models import AuditEntry, Job
from lucent_admin.operations.queue import running_generation_job
from lucent_admin.operations.roles import VIEW_CONSOLE, VIEW_RISK
from projections.readmodels import PROJECTIONS, user_projections

AUDIT_PAGE_SIZE = 50


def login_required_or_landing(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The overview, or for an account that may see only the Risk page (the Risk team), that page."""
    guarded = console_page(view)

    def landing(request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not user.has_perm(VIEW_CONSOLE) and user.has_perm(VIEW_RISK):
            return redirect("console:risk")
        return guarded(request)

    return landing


def _page(request: HttpRequest, page: str, title: str, params: dict[str, str] | None = None,
          **extra: object) -> HttpResponse:
    params = params or {}
    widgets = [render_widget(w, params) for w in page_widgets(page)]
    return render(request, "console/page.html", {
        "page": page, "title": title, "widgets": widgets, "live_query": urlencode(params), **extra,
    })


@login_required_or_landing
def overview(request: HttpRequest) -> HttpResponse:
    return _page(request, "overview", "Overview")


@console_page
def leaderboards(request: HttpRequest) -> HttpResponse:
    return _page(request, "leaderboards", "Leaderboards", lookup=UserLookupForm(auto_id="rank_%s"),
                 tools="console/tools/leaderboards.html")


@risk_page
def risk(request: HttpRequest) -> HttpResponse:
    return _page(request, "risk", "Risk")


@console_page
def market(request: HttpRequest) -> HttpResponse:
    return _page(request, "market", "Market")


@console_page
def user(request: HttpRequest) -> HttpResponse:
    form = UserLookupForm(request.GET or None)
    if not form.is_valid():
        return render(request, "console/user_lookup.html", {"form": form, "title": "User"},
                      status=400 if request.GET else 200)
    return _page(request, "user", f"User {form.cleaned_data['user']}", {"user": form.cleaned_data["user"]},
                 form=form, tools="console/tools/user.html")


@console_page
def jobs(request: HttpRequest) -> HttpResponse:
    return _page(request, "jobs", "Jobs")


@console_page
def job(request: HttpRequest, job_id: int) -> HttpResponse:
    return _page(request, "job", f"Job {job_id}", {"job": str(job_id)})


@console_page
def rebuild(request: HttpRequest, projection: str) -> HttpResponse:
    """The rebuild's dry run (GET), and its start (POST: the typed name, the permission, audited)."""
    if projection not in PROJECTIONS:
        raise Http404(f"no projection {projection!r}")
    if request.method == "POST":
        asked = request.POST.get("partitions", "").strip()
        result = actions.do_rebuild(Actor.of(request.user), projection, request.POST.get("confirm", ""),
                                    request.POST.get("flip_anyway") == "1",
                                    int(asked) if asked.isdigit() else (0 if asked else None))
        if result.denied:
            raise PermissionDenied(result.message)
        if result.ok:
            messages.success(request, result.message)
            return redirect("console:job", result.job)
        messages.error(request, f"{projection} not rebuilt: {result.message}")
    plan = actions.rebuild_dry_run(projection)
    last = Job.objects.filter(kind=Job.Kind.REBUILD, target=projection, state=Job.State.SUCCEEDED).first()
    rate = (last.result.get("applied", 0) / last.result["seconds"]) if last and last.result.get("seconds") else None
    return render(request, "console/rebuild.html", {
        "title": f"Rebuild {projection}", "plan": plan, "eta": plan.eta_seconds(rate), "busy": running_generation_job(projection),
        "estimated_mib": plan.estimated_bytes / 2**20, "used_mib": plan.used_bytes / 2**20, "max_mib": plan.max_bytes / 2**20,
    })


@console_page
def projections(request: HttpRequest) -> HttpResponse:
    return _page(request, "projections", "Projections", tools="console/tools/consistency.html",
                 sample=settings.LUCENT_CONSISTENCY_SAMPLE or 25, check_projections=user_projections(),
                 all_projections=PROJECTIONS)


@console_page
def consistency(request: HttpRequest) -> HttpResponse:
    return _page(request, "consistency", "Consistency", tools="console/tools/consistency.html",
                 sample=settings.LUCENT_CONSISTENCY_SAMPLE or 25, check_projections=user_projections(),
                 all_projections=PROJECTIONS)


@console_page
def infrastructure(request: HttpRequest) -> HttpResponse:
    return _page(request, "infrastructure", "Infrastructure")


@console_page
def shards(request: HttpRequest) -> HttpResponse:
    return _page(request, "shards", "Shards")


@console_page
def thresholds(request: HttpRequest) -> HttpResponse:
    """The Settings page: the health and recovery thresholds (POST: the permission, audited)."""
    form = ThresholdsForm(request.POST or None)
    if request.method == "POST":
        actor = Actor.of(request.user)
        result = (do_change_thresholds(actor, form.values()) if form.is_valid() else
                  refuse_input(actor, CHANGE_THRESHOLDS, "thresholds", form_problems(form)))
        if result.denied:
            raise PermissionDenied(result.message)
        if result.ok:
            messages.success(request, result.message)
            return redirect("console:settings")
        messages.error(request, f"Settings not saved: {result.message}")
    return render(request, "console/settings.html", {"title": "Settings", "form": form}, status=400 if form.errors else 200)


@audit_page
def audit(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    entries = AuditEntry.objects.all()
    if form.is_valid():
        data = form.cleaned_data
        if data["actor"]:
            entries = entries.filter(actor_name__iexact=data["actor"])
        if data["action"]:
            entries = entries.filter(action=data["action"])
        if data["outcome"]:
            entries = entries.filter(outcome=data["outcome"])
        if data["q"]:
            entries = entries.filter(target__icontains=data["q"])
    actions = AuditEntry.objects.order_by().values_list("action", flat=True).distinct()
    return render(request, "console/audit.html", {
        "title": "Audit log", "form": form, "entries": entries[:AUDIT_PAGE_SIZE], "actions": sorted(actions),
        "page_size": AUDIT_PAGE_SIZE,
    })
