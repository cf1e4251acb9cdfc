"""The Celery app, configured from Django settings (namespace CELERY_)."""
from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lucent_admin.settings")

app = Celery("lucent_admin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@beat_init.connect
def _check_services(**_: Any) -> None:
    # Import here: the Django settings must be loaded by Celery's Django fixup first.
    from lucent_admin.startup import check_redis

    check_redis()
