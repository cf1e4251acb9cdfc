"""The freshness canary, pure parts: its event, the commit's sample writes, the percentiles."""
from __future__ import annotations

import pytest

from projections import keys
from projections.events import CANARY_TYPE, CanaryAppended, Envelope, decode
from projections.projector.canary import iso_ms, sample_writes
from projections.queries import percentile
from projections.readmodels import PROJECTIONS, model
from tests.unit.eventfactory import recorded

HOUR = 3_600_000


def canary(canary_id: str, appended_at: int) -> CanaryAppended:
    return CanaryAppended(Envelope(canary_id, "lucent-canary", 10, CANARY_TYPE, appended_at), canary_id, appended_at)


def test_a_canary_decodes_to_its_appended_time_in_ms() -> None:
    at = 1_760_000_000_123
    event = decode(recorded(CANARY_TYPE, {"canaryId": "c-9", "appendedAt": iso_ms(at)}, "lucent-canary"))
    assert isinstance(event, CanaryAppended)
    assert (event.canary_id, event.appended_at, event.envelope.stream) == ("c-9", at, "lucent-canary")
    assert iso_ms(at) == "2025-10-09T08:53:20.123Z"


def test_every_projection_subscribes_to_the_canary_and_no_fold_touches_it() -> None:
    event = canary("c-1", 5)
    for name in PROJECTIONS:
        m = model(name)
        assert CANARY_TYPE in m.event_types
        assert m.touches(event) == ()  # type: ignore[arg-type]  # never a DomainEvent; proved harmless anyway


def test_sample_writes_record_each_canary_and_trim_by_time_and_count() -> None:
    now = 10 * HOUR
    writes = sample_writes("risk", [canary("a", now - 12), canary("b", now - 3)], now)
    key = keys.canary_samples("risk")
    assert writes == [
        ("ZADD", key, str(now), f"{now}:{now - 12}:a"),
        ("ZADD", key, str(now), f"{now}:{now - 3}:b"),
        ("ZREMRANGEBYSCORE", key, "-inf", f"({now - HOUR}"),
        ("ZREMRANGEBYRANK", key, "0", str(-keys.CANARY_SAMPLES_CAP - 1)),
    ]


def test_a_canary_older_than_the_history_is_not_recorded() -> None:
    """A catch-up through old history would otherwise write one sample per canary ever appended."""
    now = 10 * HOUR
    assert sample_writes("risk", [canary("old", now - HOUR - 1)], now) == []
    assert len(sample_writes("risk", [canary("old", now - HOUR - 1), canary("new", now - 5)], now)) == 3


@pytest.mark.parametrize(
    ("values", "p50", "p99"),
    [
        ([], None, None),
        ([7], 7, 7),
        ([3, 1, 2], 2, 3),
        ([1, 2, 3, 4], 2, 4),  # nearest rank: an observed value, never an interpolated 2.5
        (list(range(1, 101)), 50, 99),
        (list(range(1, 201)), 100, 198),
        ([5] * 99 + [900], 5, 5),  # one outlier in a hundred is above the p99
        ([5] * 98 + [900, 901], 5, 900),
    ],
)
def test_percentile_is_nearest_rank(values: list[int], p50: int | None, p99: int | None) -> None:
    assert (percentile(values, 50), percentile(values, 99)) == (p50, p99)
