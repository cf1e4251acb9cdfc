"""``manage.py job-approve ID [--as OPERATOR]``: a second operator lets a rebuild or rollback start."""
from __future__ import annotations

from lucent_admin.operations import actions
from lucent_admin.operations.cli import job_command

Command = job_command("Approve a job waiting for a second operator (two-person approval, LUCENT_REBUILD_APPROVAL=1).", actions.do_approve_job)
