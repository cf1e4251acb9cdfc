"""The thresholds operators set on the console's Settings page: stored in the database, defaults here.

Each :class:`Threshold` names one value, its unit, its bounds and what it does. The
values in force are read by :func:`current` (cached for a second, so a change takes
effect without a restart, within a second or two); they are changed only through
``actions.do_change_thresholds`` (permission, audit). The engine receives plain
values: :func:`health_thresholds` and :func:`recovery_rules`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from projections.health import Thresholds
from projections.maintenance.recovery import Rules


@dataclass(frozen=True)
class Threshold:
    name: str
    group: str
    label: str
    default: float
    minimum: float
    maximum: float
    unit: str  # "s", "%", "users", "attempts", "" for an on/off switch
    help: str

    @property
    def switch(self) -> bool:
        return self.unit == ""


HEALTH, RULES, GUARDS = "Health states", "Recovery rules", "Guards on automatic actions"
THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("health_window_s", HEALTH, "Trend window", 30, 5, 300, "s",
              "The lag trend is judged over this many seconds of status samples."),
    Threshold("health_warn_lag_s", HEALTH, "Warn when the lag grows past", 5, 0.1, 3600, "s",
              "A lag growing across the whole window warns once it is above this."),
    Threshold("health_stall_s", HEALTH, "Stalled after", 20, 1, 3600, "s",
              "Events waiting and the checkpoint not moving for this long: stalled."),
    Threshold("health_canary_stale_s", HEALTH, "No canary for", 30, 5, 3600, "s",
              "A projection no canary reached for this long warns, even if its lag looks fine."),
    Threshold("lag_resync", RULES, "Resync on lag", 1, 0, 1, "", "Resync a projection whose lag stays high."),
    Threshold("lag_resync_above_s", RULES, "… when the lag is above", 60, 1, 86_400, "s", ""),
    Threshold("lag_resync_for_s", RULES, "… for", 120, 5, 86_400, "s", ""),
    Threshold("stall_resync", RULES, "Resync when stalled", 1, 0, 1, "", "Resync a stalled projection."),
    Threshold("stall_resync_for_s", RULES, "… stalled for", 60, 1, 86_400, "s", ""),
    Threshold("repair", RULES, "Repair after a scheduled check", 1, 0, 1, "",
              "Rebuild the inconsistent users a scheduled consistency check finds."),
    Threshold("repair_below_score", RULES, "… when its score is below", 100, 0, 100, "%",
              "100: any difference is repaired."),
    Threshold("missing_rebuild", RULES, "Heal missing read models", 1, 0, 1, "",
              "Read models missing while the checkpoint survived (Redis emptied or evicted): repair the users, "
              "or rebuild the projection."),
    Threshold("missing_sample", RULES, "… users sampled per look", 200, 10, 100_000, "users",
              "How many users of each ranking are looked up each time."),
    Threshold("missing_rebuild_above", RULES, "… rebuild the projection when missing above", 50, 1, 100, "%",
              "Below this share of the sample the missing users are repaired one by one."),
    Threshold("cooldown_s", GUARDS, "Cooldown", 300, 0, 86_400, "s",
              "After an automatic action, the same rule waits this long before it acts on the projection again."),
    Threshold("max_attempts_per_hour", GUARDS, "At most", 3, 1, 100, "attempts",
              "Automatic actions per projection an hour; past that they stop and an operator is alerted."),
)
BY_NAME = {t.name: t for t in THRESHOLDS}

_CACHE_S = 1.0
_lock = threading.Lock()
_cached: tuple[float, dict[str, float]] = (0.0, {})


def defaults() -> dict[str, float]:
    return {t.name: float(t.default) for t in THRESHOLDS}


def current(fresh: bool = False) -> dict[str, float]:
    """Every threshold's value in force (the stored ones over the defaults)."""
    global _cached
    from lucent_admin.operations.models import ThresholdValue

    with _lock:
        at, values = _cached
        if fresh or time.monotonic() - at > _CACHE_S:
            stored = dict(ThresholdValue.objects.filter(name__in=BY_NAME).values_list("name", "value"))
            values = {**defaults(), **{k: float(v) for k, v in stored.items()}}
            _cached = (time.monotonic(), values)
        return dict(values)


def forget() -> None:
    """Drop the cache (after a change, in this process)."""
    global _cached
    with _lock:
        _cached = (0.0, {})


def invalid(name: str, value: float) -> str:
    """What is wrong with ``value`` for threshold ``name``, naming it and the fix; "" when nothing is."""
    t = BY_NAME.get(name)
    if t is None:
        return f"{name}: there is no such threshold"
    if t.switch and value not in (0.0, 1.0):
        return f"{t.name}: must be on (1) or off (0)"
    if not t.minimum <= value <= t.maximum:
        unit = f" {t.unit}" if t.unit else ""
        return f"{t.name}: must be between {t.minimum:g} and {t.maximum:g}{unit}, got {value:g}"
    return ""


def health_thresholds(values: dict[str, float] | None = None) -> Thresholds:
    v = values or current()
    return Thresholds(v["health_window_s"], v["health_warn_lag_s"], v["health_stall_s"], v["health_canary_stale_s"])


def recovery_rules(values: dict[str, float] | None = None) -> Rules:
    v = values or current()
    return Rules(
        lag_resync=bool(v["lag_resync"]), lag_resync_above_s=v["lag_resync_above_s"], lag_resync_for_s=v["lag_resync_for_s"],
        stall_resync=bool(v["stall_resync"]), stall_resync_for_s=v["stall_resync_for_s"],
        repair=bool(v["repair"]), repair_below_score=v["repair_below_score"],
        missing_rebuild=bool(v["missing_rebuild"]), missing_sample=int(v["missing_sample"]),
        missing_rebuild_above=v["missing_rebuild_above"],
        cooldown_s=v["cooldown_s"], max_attempts_per_hour=int(v["max_attempts_per_hour"]),
    )
