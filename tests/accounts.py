"""Accounts for the tests, in the console's roles (lucent_admin/operations/roles.py)."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from lucent_admin.operations.roles import VIEWERS, ensure_roles


def account(name: str, password: str = "pw-ops-123", role: str | None = VIEWERS, **fields: Any) -> Any:
    """A new account in ``role`` (None: no role at all), fetched again so its permissions are not cached."""
    ensure_roles()
    user = get_user_model().objects.create_user(name, password=password, **fields)
    if role is not None:
        user.groups.add(Group.objects.get(name=role))
    return get_user_model().objects.get(pk=user.pk)
