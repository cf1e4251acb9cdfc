"""Sign-in protection (django-axes): the client's address, and the throttle in front of every authenticate().

Axes counts failed sign-ins per account and per client address and refuses both once either count reaches
``AXES_FAILURE_LIMIT`` until the cool-off has passed. The console's login and the Django admin's both go
through ``authenticate()``, so both are covered. What reaches the audit log is decided in
``operations.signals`` and written by the action layer (``actions.audit_sign_in``).
"""
from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's IP address: REMOTE_ADDR, or the address the outermost trusted proxy saw.

    With ``LUCENT_TRUSTED_PROXY_COUNT`` = n proxies in front (each appending to X-Forwarded-For), the
    client is the n-th entry from the right; entries further left are the client's own claims and ignored.
    """
    count = settings.LUCENT_TRUSTED_PROXY_COUNT
    remote = str(request.META.get("REMOTE_ADDR") or "")
    if count:
        forwarded = [part.strip() for part in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",") if part.strip()]
        if len(forwarded) >= count:
            return forwarded[-count][:45]
    return remote[:45]


class ThrottleBackend(AxesStandaloneBackend):  # type: ignore[misc]  # django-axes ships no types
    """Axes' check of the lockout, for requests; ``authenticate()`` without a request is not throttled.

    Only the web's sign-ins carry a request; code calling ``authenticate()`` without one runs on the
    server (a management command, the shell) with the settings and secrets in hand already.
    """

    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> None:
        if request is not None:
            super().authenticate(request, username, password, **kwargs)
