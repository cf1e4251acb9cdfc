"""Who may see what: each page needs its view permission (``operations/roles.py`` groups them into roles).
Anonymous users go to the login page; a signed-in account without the permission gets 403.

Actions check their own permission in the action layer (``lucent_admin/operations/audit.py``'s ``perform``),
which audits every attempt, denied ones included; the live socket of a page checks the page's.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from lucent_admin.operations.roles import VIEW_AUDIT, VIEW_CONSOLE, VIEW_RISK

View = Callable[..., HttpResponse]
PAGE_PERMISSIONS = {"risk": VIEW_RISK, "audit": VIEW_AUDIT}  # every other page: VIEW_CONSOLE


def page_permission(page: str) -> str:
    return PAGE_PERMISSIONS.get(page, VIEW_CONSOLE)


def permission_required(permission: str) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not request.user.has_perm(permission):
                raise PermissionDenied(f"This page needs the permission {permission!r}; ask an administrator for "
                                       "the role that has it.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


console_page = permission_required(VIEW_CONSOLE)
risk_page = permission_required(VIEW_RISK)
audit_page = permission_required(VIEW_AUDIT)
