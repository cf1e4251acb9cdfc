"""The lag chart: a projection's lag samples of the last hour as SVG polyline points.

Drawn by hand because it is one polyline; the charts of the coming pages
(trends, infrastructure) take a vendored chart library instead.
"""
from __future__ import annotations

from collections.abc import Sequence

from projections.keys import LAG_HISTORY_MS
from projections.queries import LagSample


def sparkline(samples: Sequence[LagSample], now_ms: int, width: int = 240, height: int = 40) -> tuple[str, float]:
    """SVG polyline points of ``samples`` over the last hour, and the max lag shown."""
    if not samples:
        return "", 0.0
    top = max(s.lag_seconds for s in samples) or 1.0
    start = now_ms - LAG_HISTORY_MS
    points = [
        f"{(s.at_ms - start) * width / LAG_HISTORY_MS:.1f},{height - 2 - (s.lag_seconds / top) * (height - 4):.1f}"
        for s in samples
    ]
    return " ".join(points), max(s.lag_seconds for s in samples)
