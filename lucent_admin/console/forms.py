"""Operator input, validated before it reaches the event store or a Redis key."""
from __future__ import annotations

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


class UserLookupForm(forms.Form):
    user = forms.CharField(label="User id", max_length=64, validators=[identifier("User id")])


class AcknowledgeForm(forms.Form):
    user_id = forms.CharField(max_length=64, validators=[identifier("User id")])
    alert_id = forms.CharField(max_length=64, validators=[identifier("Alert id")])
    note = forms.CharField(max_length=NOTE_MAX, required=False, widget=forms.Textarea)


class RetryParkedForm(forms.Form):
    projection = forms.ChoiceField(choices=[(p, p) for p in PROJECTIONS],
                                   error_messages={"invalid_choice": f"Projection must be one of {', '.join(PROJECTIONS)}."})
    event_id = forms.UUIDField(error_messages={"invalid": "Event id must be a UUID."})


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=64)
    outcome = forms.ChoiceField(required=False, choices=[("", "any outcome"), ("ok", "ok"), ("denied", "denied"), ("failed", "failed")])
    q = forms.CharField(required=False, max_length=200, label="Target contains")
