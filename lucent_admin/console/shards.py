"""What the Shards page shows: every partition with its owner, fencing epoch, lease, state, checkpoint, lag and
rate, and every projector member with its partitions, events a second, CPU and memory. Redrawn when a member's
partitions change (its notice: ``shards``) and with each committed batch of a projection."""
from __future__ import annotations

from typing import Any

from lucent_admin.bootstrap import queries as q
from lucent_admin.console.contexts import STATE_CLASS

Params = Any


def shards(params: Params) -> dict[str, Any]:
    found = q().shards()
    rows = [{"p": p, "state_class": "bad" if not p.owner else STATE_CLASS.get(p.state, "warn"),
             "events_behind": f"{p.events_behind:,}{'+' if p.events_behind_bounded else ''}",
             "lease_left_s": p.lease_left_ms / 1000, "updated_ms": int(p.updated_at * 1000)} for p in found.partitions]
    members = [{"m": m, "rss_bytes": m.rss_mb * 2**20, "lapses_s": m.expires_in_ms / 1000} for m in found.members]
    return {"rows": rows, "members": members, "unowned": found.unowned}
