"""The console's roles: groups of permissions, created by a migration (and again after a test flush).

* **Operators**: every page, every operator action, the audit log and Django admin's read-only
  views of jobs and the audit log; not user management (no ``auth`` permission).
* **Risk team**: the Risk page and acknowledging alerts.
* **Viewers**: every page but the audit log, read-only.

Pages need ``operations.view_console`` (the Risk page ``operations.view_risk``, the audit log
``operations.view_auditentry``); each action its own permission (``actions.py``). User
management stays with superusers (``manage.py createsuperuser``).
"""
from __future__ import annotations

from typing import Any

VIEW_CONSOLE = "operations.view_console"
VIEW_RISK = "operations.view_risk"
VIEW_AUDIT = "operations.view_auditentry"
OPERATORS, RISK_TEAM, VIEWERS = "Operators", "Risk team", "Viewers"

ACTION_PERMISSIONS = ("acknowledge_alert", "retry_parked_event", "park_bad_event", "run_rebuild", "resync_projection",
                      "approve_job", "run_consistency_check", "change_thresholds")
ROLES: dict[str, tuple[str, ...]] = {
    OPERATORS: ("view_console", "view_risk", "view_auditentry", "view_job", "view_jobevent", *ACTION_PERMISSIONS),
    RISK_TEAM: ("view_risk", "acknowledge_alert"),
    VIEWERS: ("view_console", "view_risk"),
}


def ensure_roles(apps: Any = None) -> None:
    """Create the groups with exactly their permissions (idempotent; ``apps``: a migration's registry)."""
    if apps is None:
        from django.apps import apps as live

        apps = live
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        found = permission_model.objects.filter(content_type__app_label="operations", codename__in=codenames)
        group.permissions.set(found)
