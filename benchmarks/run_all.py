#!/usr/bin/env python
"""`make bench`: run every benchmarks/bench_*.py and print one JSON object of their figures.

Each benchmark prints one JSON object on stdout (progress on stderr). Extra
arguments (e.g. --quick) are passed to each. An empty set prints {}.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    results: dict[str, object] = {}
    failed = False
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        print(f"== {name}", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, str(script), *argv], cwd=HERE.parent, stdout=subprocess.PIPE, text=True)
        try:
            results[name] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            results[name] = {"error": f"exit {proc.returncode}, no JSON", "stdout": proc.stdout[-500:]}
            failed = True
        failed = failed or proc.returncode != 0
    print(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
