"""Console pages. Views read through projections/queries.py, never raw Redis."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from lucent_admin.console.permissions import staff_required


@staff_required
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "console/overview.html", {"projections": []})
