"""Who may see the console: staff only. Anonymous users go to the login page; others get 403.

Actions check their own permission in the action layer (``lucent_admin/operations/actions.py``),
which audits every attempt, denied ones included.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("The console is for staff accounts.")
        return view(request, *args, **kwargs)

    return wrapper
