#!/usr/bin/env python3
"""Audit the pinned dependencies (constraints.txt) for known vulnerabilities with pip-audit.

Exit 1 when a pinned version has a known vulnerability (each printed with its fix versions). When the
vulnerability service cannot answer (no network, PyPI's JSON API or OSV unreachable, packages it does
not know), the audit is *not done*: it says so in one clear line and exits 0, so CI goes on, unless
``--require-service`` is given. Both services are tried: PyPI's advisories first, then OSV.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("pypi", "osv")


def run_audit(service: str) -> tuple[list[dict], str]:
    """pip-audit's dependency records for constraints.txt from ``service``, or [] and why there are none."""
    command = [sys.executable, "-m", "pip_audit", "--requirement", str(ROOT / "constraints.txt"), "--no-deps",
               "--disable-pip", "--vulnerability-service", service, "--format", "json", "--progress-spinner", "off",
               "--timeout", "20"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        return list(json.loads(done.stdout)["dependencies"]), ""
    except (ValueError, KeyError):
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return [], lines[-1] if lines else f"pip-audit exited with {done.returncode}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--require-service", action="store_true", help="fail when no service could audit")
    args = parser.parse_args()
    failures = []
    for service in SERVICES:
        records, why = run_audit(service)
        audited = [r for r in records if "skip_reason" not in r]
        if not audited:
            why = why or f"all {len(records)} packages skipped: {records[0]['skip_reason'] if records else '?'}"
            failures.append(f"{service}: {why[:200]}")
            continue
        vulnerable = [r for r in audited if r.get("vulns")]
        for record in vulnerable:
            for vuln in record["vulns"]:
                fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
                print(f"{record['name']} {record['version']}: {vuln['id']} (fixed in {fixes})")
        skipped = len(records) - len(audited)
        print(f"dependency audit ({service}): {len(audited)} packages audited, {len(vulnerable)} vulnerable"
              + (f", {skipped} not known to the service" if skipped else ""))
        return 1 if vulnerable else 0
    print(f"dependency audit NOT DONE: no vulnerability service could answer ({'; '.join(failures)}); "
          "run scripts/audit_dependencies.py where PyPI's JSON API or api.osv.dev is reachable", file=sys.stderr)
    return 1 if args.require_service else 0


if __name__ == "__main__":
    sys.exit(main())
