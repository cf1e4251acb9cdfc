"""Operator input, validated before it reaches the event store or a Redis key."""
from __future__ import annotations

import uuid
from collections.abc import Callable

from django import forms
from django.core.exceptions import ValidationError

from projections.events import NOTE_MAX, is_identifier
from projections.readmodels import PROJECTIONS

ID_HELP = "1–64 characters: letters, digits, '_', '.' or '-'"


def identifier(field: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if not is_identifier(value):
            raise ValidationError(f"{field} must be {ID_HELP}.")

    return check


def _is_uuid(value: str) -> bool:
    try:
        return bool(uuid.UUID(value))
    except ValueError:
        return False


def event_name(value: str) -> None:
    """An event as an operator names it: its id (a UUID), ``stream/id`` (ids are unique only within a stream) or
    its commit position."""
    stream, slash, event_id = value.rpartition("/")
    if value.isdigit() or (value.isprintable() and (not slash or stream.strip()) and _is_uuid(event_id)):
        return
    raise ValidationError("Event must be an event id (a UUID), stream/event id, or a commit position.")


class UserLookupForm(forms.Form):
    user = forms.CharField(label="User id", max_length=64, validators=[identifier("User id")])


class AcknowledgeForm(forms.Form):
    user_id = forms.CharField(max_length=64, validators=[identifier("User id")])
    alert_id = forms.CharField(max_length=64, validators=[identifier("Alert id")])
    note = forms.CharField(max_length=NOTE_MAX, required=False, widget=forms.Textarea)


class RetryParkedForm(forms.Form):
    projection = forms.ChoiceField(choices=[(p, p) for p in PROJECTIONS],
                                   error_messages={"invalid_choice": f"Projection must be one of {', '.join(PROJECTIONS)}."})
    event_id = forms.CharField(max_length=300, validators=[event_name])


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=64)
    outcome = forms.ChoiceField(required=False, choices=[("", "any outcome"), ("ok", "ok"), ("denied", "denied"), ("failed", "failed")])
    q = forms.CharField(required=False, max_length=200, label="Target contains")


class ConsistencyCheckForm(forms.Form):
    """Check consistency: one user, a rolling sample, or everything; in one projection or all of them."""

    SCOPES = [("user", "one user"), ("sample", "a sample"), ("all", "everything")]

    scope = forms.ChoiceField(choices=SCOPES, error_messages={"invalid_choice": "Scope must be user, sample or all."})
    projection = forms.ChoiceField(required=False, choices=[("", "every projection")],
                                   error_messages={"invalid_choice": "Projection must be one with user read models."})
    user_id = forms.CharField(required=False, max_length=64, validators=[identifier("User id")])
    sample = forms.IntegerField(required=False, min_value=1, max_value=10_000,
                                error_messages={"min_value": "Sample must be at least 1 user.",
                                                "max_value": "Sample must be at most 10,000 users."})

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["projection"].choices = [("", "every projection"), *((p, p) for p in PROJECTIONS)]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("scope") == "user" and not data.get("user_id"):
            self.add_error("user_id", "Give the user id to check.")
        if data.get("scope") == "sample" and not data.get("sample"):
            self.add_error("sample", "Give how many users to check.")
        return data
