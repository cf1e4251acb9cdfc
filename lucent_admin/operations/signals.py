"""Sign-ins and sign-outs are operator actions too: they go to the audit log (via the action layer).

What a refused sign-in leaves in the audit log is bounded (decision: docs/decisions.md, "Security and access"): a wrong
password for an existing account is one entry each (at most the failure limit per account and per address
before the lockout); a name that is no account is one entry per address per cool-off window, however many
names it tries (axes counts them all); the failure that starts a lockout is one ``auth.lockout`` entry;
attempts refused during a lockout add nothing (axes refuses them without checking the password).
"""
from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from lucent_admin.operations.audit import Outcome, audit_lockout, audit_sign_in, audit_sign_out
from lucent_admin.operations.signin import client_address

UNKNOWN_ACCOUNT = "no such account (further attempts from this address are counted, not audited, until the cool-off ends)"


def _address(request: Any) -> str:
    return client_address(request) if request is not None else ""


def _refused_by_lockout(request: Any) -> bool:
    """Axes refused this attempt without checking the password: an existing lockout.

    Axes' backend marks such a request ``axes_locked_out`` before the failure signal; a failure that
    axes counted (the one that may start a lockout) carries its count in ``axes_failures_since_start``.
    """
    return bool(getattr(request, "axes_locked_out", False)) and getattr(request, "axes_failures_since_start", None) is None


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **_: Any) -> None:
    audit_sign_in(user.get_username(), user, address=_address(request))


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **_: Any) -> None:
    if user is not None:
        audit_sign_out(user, _address(request))


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    if _refused_by_lockout(request):
        return
    name = str(credentials.get("username", ""))[:150]
    model = get_user_model()
    if model._default_manager.filter(**{model.USERNAME_FIELD: name}).exists():
        audit_sign_in(name, None, Outcome.DENIED, "wrong username or password", _address(request))
    else:
        audit_sign_in(name, None, Outcome.DENIED, UNKNOWN_ACCOUNT, _address(request), once_per=settings.AXES_COOLOFF_TIME)


@receiver(user_locked_out)
def _locked_out(sender: Any, request: Any = None, username: str | None = None, ip_address: str | None = None,
                **_: Any) -> None:
    failures = getattr(request, "axes_failures_since_start", None)
    if failures is None:
        return  # an attempt refused during the lockout, not the failure that began it
    audit_lockout(str(username or "")[:150], str(ip_address or ""), int(failures), settings.AXES_COOLOFF_TIME)
