"""Celery tasks: thin wrappers that look things up and call one function."""
from __future__ import annotations

import socket
import time

import redis
from celery import shared_task
from django.conf import settings

from projections.lag import record_samples


@shared_task(name="lucent.ping")
def ping() -> dict[str, str]:
    """Prove a worker is consuming: answers with the worker's host name."""
    return {"pong": socket.gethostname()}


@shared_task(name="lucent.sample_lag", ignore_result=True)
def sample_lag() -> None:
    """Record each projection's lag for the overview's sparkline (scheduled by beat)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        record_samples(client, settings.LUCENT_PROJECTIONS, int(time.time() * 1000))
    finally:
        client.close()
