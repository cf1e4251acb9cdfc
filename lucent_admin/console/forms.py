"""Operator input the console reads through forms (lookups, filters, settings), with the action layer's own
field checks (:mod:`lucent_admin.operations.fields`) as validators: one message per problem, wherever it shows."""
from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.core.exceptions import ValidationError

from lucent_admin.operations import fields


def validator(check: Callable[[str], str]) -> Callable[[str], None]:
    """A form validator from a field check of the action layer."""
    def validate(value: str) -> None:
        problem = check(value)
        if problem:
            raise ValidationError(problem)

    return validate


def form_problems(form: forms.Form) -> str:
    """A bound, invalid form's errors as the action layer reports problems ("field: message; ...")."""
    return fields.problems(**{name: " ".join(str(e) for e in errs) for name, errs in form.errors.items()})


class UserLookupForm(forms.Form):
    user = forms.CharField(label="User id", max_length=64, validators=[validator(lambda v: fields.identifier("User id", v))])


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=64)
    outcome = forms.ChoiceField(required=False, choices=[("", "any outcome"), ("ok", "ok"), ("denied", "denied"), ("failed", "failed")])
    q = forms.CharField(required=False, max_length=200, label="Target contains")
