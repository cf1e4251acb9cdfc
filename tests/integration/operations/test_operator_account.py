"""`ensure_operator`: the first account, password from the environment or printed once."""
from __future__ import annotations

import io

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def run(**kwargs: str) -> str:
    out = io.StringIO()
    call_command("ensure_operator", stdout=out, **kwargs)
    return out.getvalue()


def test_password_from_environment_is_used_and_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUCENT_OPERATOR_PASSWORD", "from-the-env-42")
    output = run()
    assert "from-the-env-42" not in output
    user = authenticate(username="operator", password="from-the-env-42")
    assert user is not None and user.is_staff and not user.is_superuser  # an Operator, not a superuser
    assert list(user.groups.values_list("name", flat=True)) == ["Operators"]
    assert user.has_perm("operations.run_rebuild") and not user.has_perm("auth.add_user")  # no user management


def test_generated_password_is_printed_once_and_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LUCENT_OPERATOR_PASSWORD", raising=False)
    first = run()
    password = first.split("password: ")[1].split()[0]
    assert authenticate(username="operator", password=password) is not None
    second = run()
    assert password not in second and "exists" in second
    assert get_user_model().objects.filter(username="operator").count() == 1
