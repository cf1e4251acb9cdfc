"""constraints.txt pins every dependency pyproject.toml names, at a version its floor and cap allow."""
from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def test_constraints_pin_every_declared_dependency_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(line) for line in [*project["dependencies"], *project["optional-dependencies"]["test"]]]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    problems = [f"{req}: pinned {pins.get(canonicalize_name(req.name))}" for req in declared
                if canonicalize_name(req.name) not in pins or pins[canonicalize_name(req.name)] not in req.specifier]
    assert problems == [], "run `make constraints` after installing the change: " + "; ".join(problems)
