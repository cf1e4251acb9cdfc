"""Console pages. Views read through projections/queries.py (via contexts), never raw Redis."""
from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from lucent_admin.console.forms import AuditFilterForm, UserLookupForm
from lucent_admin.console.permissions import staff_required
from lucent_admin.console.widgets import page_widgets, render_widget
from lucent_admin.operations.models import AuditEntry

AUDIT_PAGE_SIZE = 50


def _page(request: HttpRequest, page: str, title: str, params: dict[str, str] | None = None,
          **extra: object) -> HttpResponse:
    params = params or {}
    widgets = [render_widget(w, params) for w in page_widgets(page)]
    return render(request, "console/page.html", {
        "page": page, "title": title, "widgets": widgets, "live_query": urlencode(params), **extra,
    })


@staff_required
def overview(request: HttpRequest) -> HttpResponse:
    return _page(request, "overview", "Overview")


@staff_required
def leaderboards(request: HttpRequest) -> HttpResponse:
    return _page(request, "leaderboards", "Leaderboards", lookup=UserLookupForm(auto_id="rank_%s"),
                 tools="console/tools/leaderboards.html")


@staff_required
def risk(request: HttpRequest) -> HttpResponse:
    return _page(request, "risk", "Risk")


@staff_required
def market(request: HttpRequest) -> HttpResponse:
    return _page(request, "market", "Market")


@staff_required
def user(request: HttpRequest) -> HttpResponse:
    form = UserLookupForm(request.GET or None)
    if not form.is_valid():
        return render(request, "console/user_lookup.html", {"form": form, "title": "User"},
                      status=400 if request.GET else 200)
    return _page(request, "user", f"User {form.cleaned_data['user']}", {"user": form.cleaned_data["user"]},
                 form=form, tools="console/tools/user.html")


@staff_required
def jobs(request: HttpRequest) -> HttpResponse:
    return _page(request, "jobs", "Jobs")


@staff_required
def job(request: HttpRequest, job_id: int) -> HttpResponse:
    return _page(request, "job", f"Job {job_id}", {"job": str(job_id)})


@staff_required
def projections(request: HttpRequest) -> HttpResponse:
    return _page(request, "projections", "Projections")


@staff_required
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
