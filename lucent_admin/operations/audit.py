"""The audit layer, the bottom of ``operations/``: who acts (:class:`Actor`), what they do (:class:`Action`, the
permission it needs), what became of it (:class:`Result`), and :func:`perform`, the one path every operator
action takes: permission check, input check, one call, an audit entry with its target and outcome.

Each attempt is audited — allowed, denied (a missing permission or a non-staff account) and failed (bad input,
a refusal such as "not parked", or any error on the way: the event store, Redis) — and none raises: a failure is
a Result whose message names the thing and the fix. Sign-ins, refused sign-ins, lockouts and sign-outs are
audited here too.

The command line acts as ``cli:<os user>``: whoever can run ``manage.py`` on the machine holds its settings and
secrets, so no permission is checked there (``--as`` acts with an account's permissions).
"""
from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.utils import timezone

from lucent_admin.operations.models import AuditEntry
from projections.errors import ProjectionError

log = logging.getLogger(__name__)
Outcome = AuditEntry.Outcome


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in account, or the command line (``user`` None)."""

    name: str
    user: User | AnonymousUser | None = None
    automatic: bool = False  # the system acting on a rule (recovery): exempt from two-person approval

    @classmethod
    def of(cls, user: User | AnonymousUser) -> Actor:
        return cls(user.get_username() if user.is_authenticated else "anonymous", user)

    @classmethod
    def cli(cls) -> Actor:
        return cls(f"cli:{getpass.getuser()}")

    @classmethod
    def cli_as(cls, username: str) -> Actor:
        """The command line acting with the permissions of account ``username`` (``--as``)."""
        from django.contrib.auth import get_user_model

        account = get_user_model().objects.filter(username=username).first()
        if account is None:
            raise LookupError(f"--as: there is no account {username!r}; create it (manage.py ensure_operator) or "
                              "name another with --as")
        if not account.is_active:
            raise LookupError(f"--as: the account {username!r} is inactive; name an active account with --as")
        return cls(f"cli:{getpass.getuser()} as {username}", account)

    @property
    def account(self) -> str:
        """The account acting ('' for the bare command line): what two-person approval compares."""
        return self.user.get_username() if self.user is not None and self.user.is_authenticated else ""

    def refusal(self, permission: str) -> str:
        """Why this actor may not act with ``permission``; empty if it may."""
        user = self.user
        if user is None:
            return ""
        if not user.is_authenticated:
            return "you are not signed in"
        if not user.has_perm(permission):
            return f"you need the permission {permission!r} (a role that has it: Operators{_risk_team(permission)})"
        return ""


def _risk_team(permission: str) -> str:
    return " or Risk team" if permission == "operations.acknowledge_alert" else ""


@dataclass(frozen=True)
class Action:
    """An operator action: its audit name and the permission it needs."""

    name: str
    permission: str

ACKNOWLEDGE_ALERT = Action("risk.acknowledge", "operations.acknowledge_alert")
RETRY_PARKED = Action("parked.retry", "operations.retry_parked_event")

PARK_BAD_EVENT = Action("parked.decide", "operations.park_bad_event")

RESYNC = Action("projection.resync", "operations.resync_projection")

REBUILD_USERS = Action("rebuild.users", "operations.run_rebuild")

REBUILD = Action("rebuild.projection", "operations.run_rebuild")

ROLLBACK = Action("rebuild.rollback", "operations.run_rebuild")

DROP_GENERATION = Action("rebuild.drop", "operations.run_rebuild")

CANCEL_JOB = Action("job.cancel", "operations.run_rebuild")

APPROVE_JOB = Action("job.approve", "operations.approve_job")

CHECK_CONSISTENCY = Action("consistency.check", "operations.run_consistency_check")

REPAIR = Action("consistency.repair", "operations.run_rebuild")

SIGN_IN = Action("auth.login", "")

LOCKOUT = Action("auth.lockout", "")

SIGN_OUT = Action("auth.logout", "")

FLIP_ANYWAY = Action("rebuild.flip_anyway", "operations.run_rebuild")
RESYNC_JOB = Action("projection.resync", "operations.resync_projection")
DISMISS = Action("recovery.dismiss", "operations.resync_projection")
CHANGE_THRESHOLDS = Action("settings.thresholds", "operations.change_thresholds")


@dataclass(frozen=True)
class Queued:
    """What an action that queues a job gives back: the job (None: nothing needed one, e.g. a generation already
    dropped), whether it was the same one queued or running already (``again``), and whether it waits for a second
    operator's approval (``pending``)."""

    job: int | None
    again: bool = False
    pending: bool = False


@dataclass(frozen=True)
class Result:
    """What became of an attempt: its outcome, a message for the operator and the call's value."""

    outcome: str
    message: str
    value: Any = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.OK

    @property
    def denied(self) -> bool:
        return self.outcome == Outcome.DENIED

    @property
    def job(self) -> int | None:
        """The job the action queued (or found queued already); None if it queued none or did not succeed."""
        return self.value.job if isinstance(self.value, Queued) else None


def _audit(actor: Actor, action: Action, target: str, outcome: str, detail: str, params: dict[str, Any]) -> None:
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    AuditEntry.objects.create(actor=user, actor_name=actor.name, action=action.name, target=target[:200],
                              params=params, outcome=outcome, detail=detail)


def perform(
    actor: Actor, action: Action, target: str, call: Callable[[], Any], done: str,
    invalid: str = "", **params: Any,
) -> Result:
    """Check ``actor`` may do ``action``, refuse ``invalid`` input, run ``call``; audit the outcome.

    ``done`` is the message on success; ``invalid`` (what the action's own checks found wrong with its arguments,
    naming the fields) makes the attempt fail before ``call`` runs.
    """
    refusal = actor.refusal(action.permission)
    if refusal:
        _audit(actor, action, target, Outcome.DENIED, refusal, params)
        return Result(Outcome.DENIED, f"Not allowed: {refusal}.")
    if invalid:
        _audit(actor, action, target, Outcome.FAILED, invalid, params)
        return Result(Outcome.FAILED, invalid)
    try:
        value = call()
    except ProjectionError as exc:  # a refusal that names its reason
        _audit(actor, action, target, Outcome.FAILED, str(exc), params)
        return Result(Outcome.FAILED, str(exc))
    except Exception as exc:  # noqa: BLE001 - an outage on the way is audited and reported, not a 500
        log.exception("%s on %s by %s failed", action.name, target, actor.name)
        detail = f"{type(exc).__name__}: {exc}"
        _audit(actor, action, target, Outcome.FAILED, detail, params)
        return Result(Outcome.FAILED, f"{detail} (nothing was changed; try again once the service is back)")
    if isinstance(value, Queued):
        params = {**params, **asdict(value)}
    elif isinstance(value, dict):
        params = {**params, **value}
    _audit(actor, action, target, Outcome.OK, "", params)
    return Result(Outcome.OK, done, value, params)


def refuse_input(actor: Actor, action: Action, target: str, problems: str, **params: Any) -> Result:
    """An attempt whose input could not even be read as the action's typed arguments (text that is not a number,
    a form's missing field): refused and audited as :func:`perform` refuses invalid input (a missing permission
    is still the answer first). ``problems`` name the fields, as :func:`~lucent_admin.operations.fields.problems`."""
    return perform(actor, action, target, lambda: None, "", problems or "the input could not be read", **params)


def audit_sign_in(name: str, user: User | None, outcome: str = Outcome.OK, detail: str = "",
                  address: str = "", once_per: timedelta | None = None) -> bool:
    """A sign-in (or a refused one: ``outcome`` denied) is in the audit log too, with the client's ``address``.

    With ``once_per``, the entry is written only if ``address`` has no entry of the same outcome and
    detail within that window (refusals of unknown accounts: one entry per address per lockout window,
    however many names it tries). Returns whether an entry was written.
    """
    params = {"address": address}
    if once_per is not None and AuditEntry.objects.filter(
        action=SIGN_IN.name, outcome=outcome, detail=detail, params__address=address, at__gte=timezone.now() - once_per,
    ).exists():
        return False
    _audit(Actor(name or "anonymous", user), SIGN_IN, name, outcome, detail, params)
    return True


def audit_lockout(name: str, address: str, failures: int, cool_off: timedelta) -> None:
    """The failure that locked ``name`` or ``address`` out (axes' limit reached): one entry per lockout."""
    detail = (f"{failures} failed sign-ins (account {name!r}, address {address}): sign-ins refused for "
              f"{int(cool_off.total_seconds())} s after the last failure")
    _audit(Actor(name or "anonymous"), LOCKOUT, name, Outcome.DENIED, detail, {"address": address, "failures": failures})


def audit_sign_out(user: User, address: str = "") -> None:
    _audit(Actor.of(user), SIGN_OUT, user.get_username(), Outcome.OK, "", {"address": address})
