"""Recording operator actions in the audit log."""
from __future__ import annotations

import getpass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser

from lucent_admin.operations.models import AuditEntry


def record(
    user: AbstractBaseUser | AnonymousUser,
    action: str,
    target: str = "",
    outcome: str = AuditEntry.Outcome.OK,
    detail: str = "",
    **params: Any,
) -> AuditEntry:
    """Write one audit entry for ``user`` doing ``action`` on ``target``."""
    authenticated = bool(getattr(user, "is_authenticated", False))
    return AuditEntry.objects.create(
        actor=user if authenticated else None,
        actor_name=user.get_username() if authenticated else "anonymous",
        action=action,
        target=target[:200],
        params=params,
        outcome=outcome,
        detail=detail,
    )


def record_cli(action: str, target: str = "", outcome: str = AuditEntry.Outcome.OK, detail: str = "",
               **params: Any) -> AuditEntry:
    """Write one audit entry for an action taken on the command line (actor ``cli:<os user>``)."""
    return AuditEntry.objects.create(
        actor=None, actor_name=f"cli:{getpass.getuser()}", action=action, target=target[:200],
        params=params, outcome=outcome, detail=detail,
    )
