"""``python -m tests.drills [--drills NAME,NAME] [--keep] [--list]`` (``make drills [DRILLS=NAME,NAME]``).

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

from tests.drills import stack
from tests.drills.catalog import DRILLS
from tests.drills.compare import check_exclusions
from tests.drills.drill import Drill
from tests.drills.runner import failed, run_drill
from tests.drills.stack import Template


def selected(names: str) -> list[Drill]:
    """The drills named (comma-separated; all when empty), in the suite's order; SystemExit naming an unknown one."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in {d.name for d in DRILLS}]
    if unknown:
        raise SystemExit(f"drills: unknown drill(s) {', '.join(unknown)}; known: {', '.join(d.name for d in DRILLS)}")
    return [d for d in DRILLS if not wanted or d.name in wanted]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.drills", description=__doc__.split("\n\n")[1])
    parser.add_argument("--drills", default="", help="comma-separated drill names (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory even if every drill passed")
    parser.add_argument("--list", action="store_true", help="list the drills and exit")
    parser.add_argument("--partitions", type=int, default=1,
                        help="LUCENT_PARTITIONS of every stack: the user-keyed projections split that many ways")
    args = parser.parse_args()
    stack.PARTITIONS["count"] = args.partitions
    try:
        drills = selected(args.drills)
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
    print(f"drills: {len(drills)} drill(s); working directory {workdir}", file=sys.stderr, flush=True)
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
        return 1
    print(f"drills: all {len(drills)} passed in {took:.0f} s", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
