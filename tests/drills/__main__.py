"""``python -m tests.drills [--drills NAME,NAME] [--partitions N] [--redis one|cluster|sentinel] [--keep] [--list]``
(``make drills [DRILLS=NAME,NAME] [PARTITIONS=N] [REDIS=cluster]``).

Builds the template stack once, runs each drill on a stack of its own, prints one JSON line per drill on
stdout (progress and the logs' place go to stderr) and exits 1 if any drill found a difference, a problem
or broke, 2 on a bad argument.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.drills import stack, topology
from tests.drills.catalog import DRILLS
from tests.drills.compare import check_exclusions
from tests.drills.drill import Drill
from tests.drills.runner import failed, run_drill
from tests.drills.stack import Template


def selected(names: str, where: str = topology.ONE) -> list[Drill]:
    """The drills named (comma-separated; all that run on topology ``where`` when empty), in the suite's order;
    SystemExit naming an unknown one, or one that does not run there."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in {d.name for d in DRILLS}]
    if unknown:
        raise SystemExit(f"drills: unknown drill(s) {', '.join(unknown)}; known: {', '.join(d.name for d in DRILLS)}")
    elsewhere = [d.name for d in DRILLS if d.name in wanted and where not in d.topologies]
    if elsewhere:
        raise SystemExit(f"drills: {', '.join(elsewhere)} act(s) on the stack's one Redis server, not on --redis {where}")
    return [d for d in DRILLS if (not wanted or d.name in wanted) and where in d.topologies]


def why(record: dict[str, object], chars: int = 1500) -> str:
    """What made a drill fail, in one line (repeated after the suite: CI keeps only the end of its output)."""
    reasons = {k: record[k] for k in ("error", "problems", "differences", "detail", "healed_s") if record.get(k) is not None}
    return json.dumps(reasons)[:chars]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.drills", description=__doc__.split("\n\n")[1])
    parser.add_argument("--drills", default="", help="comma-separated drill names (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory even if every drill passed")
    parser.add_argument("--list", action="store_true", help="list the drills and exit")
    parser.add_argument("--partitions", type=int, default=1,
                        help="LUCENT_PARTITIONS of every stack: the user-keyed projections split that many ways")
    parser.add_argument("--redis", choices=topology.TOPOLOGIES, default=topology.ONE,
                        help="where every stack keeps its read models: one Redis (default), a Redis Cluster of three "
                             "primaries and three replicas, or a primary with a replica behind three Sentinels")
    args = parser.parse_args()
    stack.PARTITIONS["count"] = args.partitions
    topology.CHOSEN["name"] = args.redis
    try:
        drills = selected(args.drills, args.redis)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.list:
        for d in drills:
            print(f"{d.name}: {d.fault}")
        return 0
    check_exclusions()
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so every stack's processes are stopped on the way out
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="lucent-drills-"))
    on = "" if args.redis == topology.ONE else f" on a Redis {args.redis}"
    print(f"drills: {len(drills)} drill(s){on}; working directory {workdir}", file=sys.stderr, flush=True)
    template = Template(workdir / "template").build()
    print(f"drills: template stack built in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    failures = []
    for d in drills:
        print(f"drills: {d.name} ...", file=sys.stderr, flush=True)
        record = run_drill(d, template, workdir)
        print(json.dumps(record), flush=True)
        if failed(record):
            failures.append(record)
    took = time.monotonic() - began
    if failures:
        print(f"drills: {len(failures)} of {len(drills)} failed in {took:.0f} s; logs of the failed drills' stacks:",
              file=sys.stderr)
        for record in failures:
            print(f"  {record['drill']}: {record.get('logs', workdir)}", file=sys.stderr)
            print(f"    {why(record)}", file=sys.stderr)
        return 1
    print(f"drills: all {len(drills)} passed in {took:.0f} s", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
