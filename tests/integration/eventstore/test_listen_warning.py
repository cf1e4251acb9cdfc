"""Listening beyond loopback logs a warning: the store has no authentication and no TLS."""
from __future__ import annotations

from pathlib import Path

from tests.waiting import wait_until

from .helpers import StoreSubprocess

WARNING = "no authentication and no TLS"


def test_binding_to_all_interfaces_logs_a_warning(tmp_path: Path) -> None:
    store = StoreSubprocess(tmp_path, host="0.0.0.0")
    try:
        log = wait_until(lambda: WARNING in store.log() and store.log(), 10, what="the warning in the log")
        assert f"0.0.0.0:{store.port}" in log
    finally:
        store.kill()


def test_loopback_logs_no_warning(tmp_path: Path) -> None:
    store = StoreSubprocess(tmp_path)
    try:
        log = wait_until(lambda: "listening" in store.log() and store.log(), 10, what="the start-up line")
        assert WARNING not in log
    finally:
        store.kill()
