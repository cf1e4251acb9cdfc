"""The console's recovery views: the overview's Recovery widget and the Settings page's form."""
from __future__ import annotations

from typing import Any

from django import forms

from lucent_admin.console.jobs import job_row
from lucent_admin.operations.models import Job, RecoveryState, ThresholdValue
from lucent_admin.operations.recovery import SYSTEM
from lucent_admin.operations.thresholds import THRESHOLDS, Threshold, current

Params = Any
RECENT = 5  # automatic jobs the widget lists


def recovery(params: Params) -> dict[str, Any]:
    """Cold starts under way or just healed, alerts for an operator, the latest automatic jobs."""
    states = list(RecoveryState.objects.order_by("projection"))
    recent = Job.objects.filter(requested_by__startswith=SYSTEM).order_by("-created_at", "-id")[:RECENT]
    return {
        "cold_starts": [s for s in states if s.cold_start],
        "healed": [s for s in states if s.healed_at and not s.cold_start],
        "escalated": [s for s in states if s.escalated],
        "rows": [job_row(j) for j in recent],
    }


def _field(t: Threshold, value: float) -> forms.Field:
    label = f"{t.label} ({t.unit})" if t.unit else t.label
    help_text = f"{t.help} Default {t.default:g}{' ' + t.unit if t.unit else ''}.".strip() if not t.switch else t.help
    if t.switch:
        return forms.BooleanField(label=label, required=False, initial=bool(value), help_text=help_text)
    messages = {"min_value": f"{t.label} must be at least {t.minimum:g} {t.unit}.",
                "max_value": f"{t.label} must be at most {t.maximum:g} {t.unit}.",
                "invalid": f"{t.label} must be a number (in {t.unit})."}
    shown = int(value) if float(value).is_integer() else value  # 30, not 30.0
    return forms.FloatField(label=label, min_value=t.minimum, max_value=t.maximum, initial=shown, help_text=help_text,
                            error_messages=messages, widget=forms.NumberInput(attrs={"step": "any"}))


class ThresholdsForm(forms.Form):
    """One field per threshold, in force values as initial; errors name the field and its bounds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        values = current(fresh=True)
        self.set_by = {v.name: v for v in ThresholdValue.objects.all()}
        for t in THRESHOLDS:
            self.fields[t.name] = _field(t, values[t.name])

    def groups(self) -> list[tuple[str, list[tuple[forms.BoundField, ThresholdValue | None]]]]:
        """The fields by group, each with who set its stored value (None: the default is in force)."""
        out: dict[str, list[tuple[forms.BoundField, ThresholdValue | None]]] = {}
        for t in THRESHOLDS:
            out.setdefault(t.group, []).append((self[t.name], self.set_by.get(t.name)))
        return list(out.items())

    def values(self) -> dict[str, float]:
        return {name: float(value) for name, value in self.cleaned_data.items()}
