"""Sign-ins and sign-outs are operator actions too: they go to the audit log."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from lucent_admin.operations import audit
from lucent_admin.operations.models import AuditEntry


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **_: Any) -> None:
    audit.record(user, "auth.login", user.get_username())


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **_: Any) -> None:
    if user is not None:
        audit.record(user, "auth.logout", user.get_username())


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    name = str(credentials.get("username", ""))[:150]
    AuditEntry.objects.create(actor_name=name or "anonymous", action="auth.login", target=name,
                              outcome=AuditEntry.Outcome.DENIED, detail="wrong username or password")
