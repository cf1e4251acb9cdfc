#!/usr/bin/env python3
"""Write constraints.txt: the exact versions of lucent-admin[test] and everything it needs, as installed here.

Run it (`make constraints`) in the venv after a dependency change has been installed and tested; `make run`,
`make test` and `.ci/run` install with `-c constraints.txt`, and the dependency audit checks these versions.
It walks the installed requirement graph from the project (markers evaluated for this Python), so tools
installed into the venv by hand are not pinned.
"""
from __future__ import annotations

import importlib.metadata as metadata
import sys
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "lucent-admin"
HEADER = """\
# The tested set of lucent-admin[test] (Python 3.11): exact versions, installed with `pip install -c constraints.txt`.
# Regenerate with `make constraints` after installing and testing a change; audited by scripts/audit_dependencies.py.
"""


def needs(name: str, extras: frozenset[str]) -> list[tuple[str, frozenset[str]]]:
    """The installed distributions ``name`` (with ``extras``) requires, with the extras it asks of each."""
    found = []
    for line in metadata.requires(name) or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate(default_environment() | {"extra": e}) for e in extras | {""}):
            found.append((req.name, frozenset(req.extras)))
    return found


def closure() -> dict[str, str]:
    """Every distribution reachable from lucent-admin[test]: canonical name -> 'Name==version'."""
    pins: dict[str, str] = {}
    todo = [(PROJECT, frozenset({"test"}))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        dist = metadata.distribution(name)
        if canonicalize_name(name) != PROJECT:
            pins[canonicalize_name(name)] = f"{dist.metadata['Name']}=={dist.version}"
        todo.extend(needs(name, extras))
    return pins


def main() -> None:
    try:
        pins = closure()
    except metadata.PackageNotFoundError as exc:
        sys.exit(f"lock: {exc} is required but not installed; run `make venv` first")
    (ROOT / "constraints.txt").write_text(HEADER + "".join(f"{pin}\n" for _, pin in sorted(pins.items())))
    print(f"constraints.txt: {len(pins)} pinned distributions")


if __name__ == "__main__":
    main()
