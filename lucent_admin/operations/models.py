"""The audit log: every operator action, who, what, when and the outcome."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        DENIED = "denied", "Denied"
        FAILED = "failed", "Failed"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        permissions = [
            ("acknowledge_alert", "Can acknowledge risk alerts"),
            ("retry_parked_event", "Can retry parked events"),
            ("park_bad_event", "Can park the bad event a stopped projection stopped on"),
            ("run_rebuild", "Can rebuild read models"),
            ("resync_projection", "Can make a running projector drop its state and resubscribe"),
            ("approve_job", "Can approve another operator's rebuild (two-person approval)"),
            ("run_consistency_check", "Can run consistency checks"),
            ("change_thresholds", "Can change the health and recovery thresholds (Settings page)"),
            ("view_console", "Can view the console's pages (all but Risk and the audit log)"),
            ("view_risk", "Can view the Risk page"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.target} → {self.outcome}"


class Job(models.Model):
    """A long operation run by a Celery worker: its progress, outcome and history (DESIGN invariant 10)."""

    class Kind(models.TextChoices):
        REBUILD_USERS = "rebuild-users", "Per-user rebuild"
        REBUILD = "rebuild", "Full rebuild"
        ROLLBACK = "rollback", "Rollback"
        DROP_GENERATION = "drop-generation", "Drop a generation"
        CONSISTENCY_CHECK = "consistency-check", "Consistency check"
        RESYNC = "resync", "Resync"
        FOLD = "fold", "Fold part of a rebuild"

    class State(models.TextChoices):
        PENDING_APPROVAL = "pending approval", "Pending approval"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    target = models.CharField(max_length=200)
    params = models.JSONField(default=dict, blank=True)
    requested_by = models.CharField(max_length=150)
    approved_by = models.CharField(max_length=150, blank=True)  # two-person approval: who let it start
    state = models.CharField(max_length=24, choices=State.choices, default=State.QUEUED, db_index=True)
    done = models.BigIntegerField(default=0)
    total = models.BigIntegerField(null=True, blank=True)
    unit = models.CharField(max_length=16, default="users")
    rate = models.FloatField(default=0.0)  # units a second, recent
    eta_seconds = models.FloatField(null=True, blank=True)
    phase = models.CharField(max_length=200, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"job {self.pk} {self.kind} {self.target} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state in (self.State.SUCCEEDED, self.State.FAILED, self.State.CANCELLED)

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None


class JobEvent(models.Model):
    """One line of a job's history: a state it entered, or what it did."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=24, choices=Job.State.choices)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]


class ThresholdValue(models.Model):
    """A threshold an operator set on the Settings page (``thresholds.THRESHOLDS`` has the defaults)."""

    name = models.CharField(max_length=64, primary_key=True)
    value = models.FloatField()
    updated_by = models.CharField(max_length=150)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} = {self.value:g}"


class RecoveryState(models.Model):
    """What automatic recovery remembers of a projection, in the database so that Redis emptied loses
    none of it: the highest checkpoint seen (a cold start is a checkpoint below it), the timed
    conditions' clocks, the automatic actions of the last hour and an alert raised for an operator."""

    projection = models.CharField(max_length=32, primary_key=True)
    high_checkpoint = models.BigIntegerField(default=0)
    cold_start = models.TextField(blank=True)  # why it is projecting its history again, while it is
    cold_start_at = models.DateTimeField(null=True, blank=True)
    healed_at = models.DateTimeField(null=True, blank=True)  # when the last cold start ended
    cold_start_seen = models.BigIntegerField(default=0)  # the projector's last reported cold start (epoch ms)
    lag_high_since = models.BigIntegerField(null=True, blank=True)  # epoch ms
    stalled_since = models.BigIntegerField(null=True, blank=True)
    attempts = models.JSONField(default=list, blank=True)  # [[epoch ms, rule, job id], ...] of the last hour
    escalated = models.TextField(blank=True)  # the alert for an operator, until dismissed
    escalated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"recovery of {self.projection}"
