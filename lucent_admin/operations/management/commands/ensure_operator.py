"""Create the first operator account if it does not exist."""
from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from lucent_admin.operations.roles import OPERATORS, ensure_roles


class Command(BaseCommand):
    help = "Create the operator account (password from LUCENT_OPERATOR_PASSWORD, or generated and printed once)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default=os.environ.get("LUCENT_OPERATOR_USER", "operator"))

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        users = get_user_model()
        ensure_roles()
        operators = Group.objects.get(name=OPERATORS)
        existing = users.objects.filter(username=username).first()
        if existing is not None:
            existing.groups.add(operators)
            self.stdout.write(f"Operator account '{username}' exists (role {OPERATORS}).")
            return
        password = os.environ.get("LUCENT_OPERATOR_PASSWORD") or secrets.token_urlsafe(12)
        # An Operator, not a superuser: everything but user management (manage.py createsuperuser for that);
        # staff, for Django admin's read-only views of jobs and the audit log.
        account = users.objects.create_user(username=username, email="", password=password, is_staff=True)
        account.groups.add(operators)
        if os.environ.get("LUCENT_OPERATOR_PASSWORD"):
            self.stdout.write(f"Created operator account '{username}' (password from LUCENT_OPERATOR_PASSWORD).")
        else:
            self.stdout.write(self.style.WARNING(
                f"Created operator account '{username}' with password: {password}\n"
                "  (shown once; set LUCENT_OPERATOR_PASSWORD to choose it, or change it in /admin/)"
            ))
