"""The tree keeps its architecture: who may import whom, and who writes the audit log."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL_OWNERS = ("events", "keys", "errors", "eventstore", "writer", "queries", "actions", "health", "published",
                    "infrastructure", "inventory")


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_engine_and_the_embedded_store_never_import_django() -> None:
    for package in ("projections", "eventstore_lite"):
        for path in (ROOT / package).rglob("*.py"):
            bad = {m for m in imports_of(path) if m.split(".")[0] in ("django", "channels", "celery", "lucent_admin")}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_top_level_owners_never_import_the_projector_or_the_simulator() -> None:
    for name in TOP_LEVEL_OWNERS:
        path = ROOT / "projections" / f"{name}.py"
        bad = {m for m in imports_of(path) if m.startswith(("projections.projector", "projections.simulation"))}
        assert not bad, f"projections/{name}.py imports {sorted(bad)}: imports run one way"


def test_only_esdbclient_port_imports_esdbclient() -> None:
    for path in (ROOT / "projections").rglob("*.py"):
        if any(m.split(".")[0] == "esdbclient" for m in imports_of(path)):
            assert path == ROOT / "projections" / "eventstore.py", f"{path.relative_to(ROOT)} imports esdbclient"


def test_only_the_action_layer_writes_audit_entries() -> None:
    for path in (ROOT / "lucent_admin").rglob("*.py"):
        if "AuditEntry.objects.create" in path.read_text():
            assert path == ROOT / "lucent_admin" / "operations" / "actions.py", f"{path.relative_to(ROOT)} writes audit entries"
