"""The one wait-for-condition helper of the test suite: poll a condition, never sleep blind."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class GiveUp(Exception):
    """Raised by a condition that knows it can never hold (e.g. the server it waits for exited)."""


def wait_until(condition: Callable[[], T], timeout: float = 30.0, what: str = "condition", interval: float = 0.02) -> T:
    """Poll ``condition()`` until it returns something truthy, and return that.

    An exception while polling counts as "not yet" (a server being restarted refuses for a
    while) and is named if the wait times out; :class:`GiveUp` ends the wait at once. After
    ``timeout`` seconds the test fails naming ``what``.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except GiveUp:
            raise
        except Exception as exc:  # noqa: BLE001 - see the docstring
            last = exc
        if time.monotonic() >= deadline:
            cause = f" (last error: {type(last).__name__}: {last})" if last else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{cause}")
        time.sleep(interval)
