"""The tree keeps its architecture: who may import whom, and who writes the audit log."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL_OWNERS = ("events", "keys", "errors", "eventstore", "writer", "queries", "actions", "health", "published",
                    "infrastructure", "inventory", "codec", "status")


def _imported_modules(path: Path) -> set[str]:
    """Like :func:`imports_of`, plus ``package.name`` for each ``from package import name`` (a submodule, maybe)."""
    names = imports_of(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


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
        module = ROOT / "projections" / f"{name}.py"
        paths = [module] if module.exists() else sorted((ROOT / "projections" / name).rglob("*.py"))  # a package
        assert paths, f"projections/{name}: no such owner"
        for path in paths:
            bad = {m for m in imports_of(path) if m.startswith(("projections.projector", "projections.simulation"))}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: imports run one way"


def test_the_projector_never_imports_the_read_side() -> None:
    """The read side (``queries/``) sits beside the projector, not under it: what both need (the status record and
    its codec, the Redis reply codec) lives below them."""
    for path in (ROOT / "projections" / "projector").rglob("*.py"):
        bad = {m for m in imports_of(path) if m == "projections.queries" or m.startswith("projections.queries.")}
        assert not bad, f"{path.relative_to(ROOT)} imports the read side (projections.queries)"


def test_the_projector_never_imports_the_operations_on_generations() -> None:
    """``maintenance/`` builds on the projector (a rebuild runs a Runner); the projector is handed what it needs of
    it (the healer of vanished entities), so the two never form a circle."""
    for path in (ROOT / "projections" / "projector").rglob("*.py"):
        bad = {m for m in imports_of(path) if m.startswith("projections.maintenance")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}: the projector is handed these, it does not import them"


def test_the_console_reaches_the_engine_through_the_read_side_and_the_action_layer() -> None:
    """Views, widgets and consumers read through ``projections.queries`` and act through ``operations``; the
    operations on generations and entities (``projections.maintenance``) are the action layer's to call."""
    for path in (ROOT / "lucent_admin" / "console").rglob("*.py"):
        bad = {m for m in imports_of(path) if m.startswith("projections.maintenance")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: go through queries or the action layer"


def test_only_esdbclient_port_imports_esdbclient() -> None:
    for path in (ROOT / "projections").rglob("*.py"):
        if any(m.split(".")[0] == "esdbclient" for m in imports_of(path)):
            assert path == ROOT / "projections" / "eventstore.py", f"{path.relative_to(ROOT)} imports esdbclient"


def test_only_the_audit_layer_writes_audit_entries() -> None:
    for path in (ROOT / "lucent_admin").rglob("*.py"):
        if "AuditEntry.objects.create" in path.read_text():
            assert path == ROOT / "lucent_admin" / "operations" / "audit.py", f"{path.relative_to(ROOT)} writes audit entries"


# operations/ is a one-way stack: a module imports only modules of its own layer or below (in-function imports
# count too). The base (models, roles, thresholds, field checks, sign-in helpers, observability) sits under everything; the
# command line's helpers, the signal receivers and the management commands sit on top.
OPERATION_LAYERS = (
    ("models", "roles", "thresholds", "fields", "signin", "observability", "apps", "admin", "migrations"),
    ("audit",),
    ("queue",),
    ("actions",),
    ("engines",),
    ("jobs",),
    ("schedules", "recovery"),
    ("tasks",),
    ("cli", "signals", "management"),
)


def _operations_layer(module: str) -> int:
    part = module.removeprefix("lucent_admin.operations.").split(".")[0]
    for i, names in enumerate(OPERATION_LAYERS):
        if part in names:
            return i
    raise AssertionError(f"lucent_admin.operations.{part} has no layer in OPERATION_LAYERS: give it one")


def _operations_modules() -> list[tuple[Path, str]]:
    base = ROOT / "lucent_admin" / "operations"
    out = []
    for path in base.rglob("*.py"):
        relative = path.relative_to(ROOT).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"]
        out.append((path, ".".join(parts)))
    return [(p, m) for p, m in out if m != "lucent_admin.operations"]


def test_operations_is_a_one_way_stack_audit_queue_actions_engines_jobs_schedules_tasks() -> None:
    for path, module in _operations_modules():
        mine = _operations_layer(module)
        for imported in imports_of(path):
            if imported.startswith("lucent_admin.operations."):
                assert _operations_layer(imported) <= mine, (
                    f"{module} (layer {mine}) imports {imported} (layer {_operations_layer(imported)}): imports run "
                    "one way, down the stack")
            assert not imported.startswith("lucent_admin.console"), f"{module} imports the console {imported}: an arrow up"


def _modules(package: str) -> list[tuple[Path, str]]:
    out = []
    for path in (ROOT / package).rglob("*.py"):
        parts = [p for p in path.relative_to(ROOT).with_suffix("").parts if p != "__init__"]
        if "migrations" not in parts:
            out.append((path, ".".join(parts)))
    return out


def test_the_django_side_has_no_import_circle() -> None:
    modules = dict((module, path) for path, module in _modules("lucent_admin"))
    graph = {module: {m for m in _imported_modules(path) if m in modules and m != module} for module, path in modules.items()}
    seen: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        if seen.get(module) == 2:
            return
        assert seen.get(module) != 1, f"an import circle: {' -> '.join(trail[trail.index(module):] + [module])}"
        seen[module] = 1
        for imported in sorted(graph.get(module, ())):
            visit(imported, trail + [module])
        seen[module] = 2

    for module in sorted(graph):
        visit(module, [])


def test_no_engine_branches_on_a_projections_name() -> None:
    """What differs between read models is asked of the read model (``readmodels/base.py``'s hooks), never decided by
    comparing a projection's name: a fifth read model touches only ``readmodels/`` and ``keys.py``."""
    names = {"portfolio", "risk", "market", "leaderboards"}
    engines = [ROOT / "projections" / "maintenance", ROOT / "projections" / "projector", ROOT / "lucent_admin" / "operations"]
    paths = [path for folder in engines for path in folder.rglob("*.py")] + [ROOT / "projections" / "published.py"]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Compare):
                literals = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                named = names.intersection(v for v in literals if isinstance(v, str))
                assert not named, f"{path.relative_to(ROOT)}:{node.lineno} compares with {sorted(named)}: ask the read model"


def test_every_job_kind_has_one_rule_and_one_engine() -> None:
    """The job kinds' registry (``queue.KINDS``: unit, approval, generations) and their engines cover every kind."""
    import django

    django.setup()
    from lucent_admin.operations.engines import ENGINES
    from lucent_admin.operations.models import Job
    from lucent_admin.operations.queue import KINDS

    assert set(KINDS) == set(Job.Kind.values) == set(ENGINES)


def test_engines_are_handed_their_clients() -> None:
    """The composition root (``bootstrap``) builds the clients; the job runner hands them to the engines, which
    never fetch one themselves."""
    path = ROOT / "lucent_admin" / "operations" / "engines.py"
    source = path.read_text()
    assert "bootstrap." not in source and "redis.Redis" not in source, "engines.py fetches a client: take Services"
