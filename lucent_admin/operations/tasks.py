"""Celery tasks: thin wrappers that look things up and call one function."""
from __future__ import annotations

import socket

from celery import shared_task


@shared_task(name="lucent.ping")
def ping() -> dict[str, str]:
    """Prove a worker is consuming: answers with the worker's host name."""
    return {"pong": socket.gethostname()}
