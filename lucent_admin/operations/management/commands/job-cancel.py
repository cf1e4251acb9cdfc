"""``manage.py job-cancel ID [--as OPERATOR]``: ask a job to stop (within a second)."""
from __future__ import annotations

from lucent_admin.operations import actions
from lucent_admin.operations.cli import job_command

Command = job_command("Cancel a job: it stops within a second and leaves the live read models untouched.", actions.do_cancel_job)
