"""Redis replies read back: a reply as str, a field as a number. The one bytes→str helper every reader and
writer of Redis uses (the read models' value codec — JSON maps, floats — is ``readmodels/base.py``'s)."""
from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    """A Redis reply as str ('' for None)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def as_float(value: Any, default: float = 0.0) -> float:
    """A numeric reply or field as a float (``default`` when missing or empty)."""
    return default if value in (None, "", b"") else float(text(value))


def as_int(value: Any, default: int = 0) -> int:
    """A numeric reply or field as an int (``default`` when missing or empty)."""
    return default if value in (None, "", b"") else int(text(value))
