"""Sign-ins and sign-outs are operator actions too: they go to the audit log (via the action layer)."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from lucent_admin.operations.actions import Outcome, audit_sign_in, audit_sign_out


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **_: Any) -> None:
    audit_sign_in(user.get_username(), user)


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **_: Any) -> None:
    if user is not None:
        audit_sign_out(user)


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    name = str(credentials.get("username", ""))[:150]
    audit_sign_in(name, None, Outcome.DENIED, "wrong username or password")
