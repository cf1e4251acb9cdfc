#!/usr/bin/env python3
"""Refresh the vendored htmx, its websocket extension and uPlot (the console's charts) from the npm registry.

Pinned versions below; bump them here and rerun. Uses `npm pack`, so it goes
through whatever registry npm is configured with.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {
    # npm package@version: (file inside the tarball, vendored name)
    "htmx.org@2.0.11": ("package/dist/htmx.min.js", "htmx.min.js"),
    "htmx-ext-ws@2.0.4": ("package/dist/ws.min.js", "htmx-ext-ws.min.js"),
    "uplot@1.6.32": ("package/dist/uPlot.iife.min.js", "uPlot.iife.min.js"),
    "uplot@1.6.32#css": ("package/dist/uPlot.min.css", "uPlot.min.css"),
}
DEST = Path(__file__).resolve().parent.parent / "static" / "vendor"


def fetch(spec: str, member: str, name: str, workdir: Path) -> None:
    out = subprocess.run(
        ["npm", "pack", spec.split("#")[0], "--silent"], cwd=workdir, check=True, capture_output=True, text=True
    ).stdout.strip().splitlines()[-1]
    with tarfile.open(workdir / out) as tar:
        source = tar.extractfile(member)
        if source is None:
            sys.exit(f"{spec}: {member} not found in the package")
        (DEST / name).write_bytes(source.read())
    print(f"vendored {spec} -> static/vendor/{name}")


def main() -> None:
    if shutil.which("npm") is None:
        sys.exit("npm is needed to refresh the vendored scripts; install Node.js and npm")
    DEST.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for spec, (member, name) in PACKAGES.items():
            fetch(spec, member, name, Path(tmp))
    (DEST / "VERSIONS").write_text("".join(f"{spec}\n" for spec in dict.fromkeys(s.split("#")[0] for s in PACKAGES)))


if __name__ == "__main__":
    main()
