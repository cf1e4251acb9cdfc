"""``manage.py job-approve ID --as OPERATOR``: a second operator lets a rebuild or rollback start.

The command line cannot check a password, so the approving account must be named (no default), exist, be
active, have ``operations.approve_job`` and be neither the account nor the OS user that asked; the audit
entry names the OS user too (``cli:OS-USER as OPERATOR``)."""
from __future__ import annotations

from lucent_admin.operations import actions
from lucent_admin.operations.cli import job_command

Command = job_command("Approve a job waiting for a second operator (two-person approval, LUCENT_REBUILD_APPROVAL=1).", actions.do_approve_job,
                      as_required=True)
