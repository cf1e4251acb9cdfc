"""Who may see the console: staff only. Anonymous users go to the login page; others get 403."""
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


def permission_required(perm: str, action: str) -> Callable[[View], View]:
    """403 (and an audit entry with outcome "denied") unless the user has ``perm``."""
    from lucent_admin.operations import audit

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_perm(perm):
                audit.record(request.user, action, outcome="denied", detail=f"missing permission {perm}")
                raise PermissionDenied(f"You need the permission {perm!r}.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
