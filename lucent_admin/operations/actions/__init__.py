"""Every operator action, one ``do_*`` function each, called alike by views, management commands, Celery tasks
and automatic recovery (as zulip's ``zerver/actions/``); each goes through :func:`~lucent_admin.operations.audit.perform`
(permission, input checked field by field with :mod:`~lucent_admin.operations.fields`, audit entry with target and
outcome) and returns a :class:`~lucent_admin.operations.audit.Result`.

By subject: :mod:`.events` (alerts, parked events, resync), :mod:`.rebuilds` (per-user rebuild, rebuild, rollback,
drop of a generation), :mod:`.approvals` (cancel, flip anyway, approve a job), :mod:`.consistency` (check,
repair), :mod:`.recovery` (resync job, dismiss a recovery alert, thresholds).
"""
from __future__ import annotations

from lucent_admin.operations.actions.approvals import do_approve_job, do_cancel_job, do_flip_anyway
from lucent_admin.operations.actions.consistency import MAX_SAMPLE, do_check_consistency, do_repair
from lucent_admin.operations.actions.events import do_acknowledge_alert, do_park_bad_event, do_resync, do_retry_parked
from lucent_admin.operations.actions.rebuilds import (
    do_drop_generation,
    do_rebuild,
    do_rebuild_users,
    do_rollback,
    rebuild_dry_run,
)
from lucent_admin.operations.actions.recovery import do_change_thresholds, do_dismiss, do_resync_job

__all__ = [
    "MAX_SAMPLE", "do_acknowledge_alert", "do_approve_job", "do_cancel_job", "do_change_thresholds",
    "do_check_consistency", "do_dismiss", "do_drop_generation", "do_flip_anyway", "do_park_bad_event", "do_rebuild",
    "do_rebuild_users", "do_repair", "do_resync", "do_resync_job", "do_retry_parked", "do_rollback", "rebuild_dry_run",
]
