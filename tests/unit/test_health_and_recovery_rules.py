"""Health states over a window of status samples, and the recovery rules they feed (pure)."""
from __future__ import annotations

from projections.health import Health, HealthSample, HealthState, Observed, Thresholds, classify
from projections.maintenance.recovery import Missing, Rules, Since, decide

NOW = 1_000_000_000
T = Thresholds(window_s=30, warn_lag_s=5, stall_s=20, canary_stale_s=30)


def live(**over: object) -> Observed:
    base: dict[str, object] = {"alive": True, "started": True, "stopped_on": "",
                               "stall_error": "", "events_behind": 0, "lag_seconds": 0.0}
    base.update(over)
    return Observed(**base)  # type: ignore[arg-type]


def samples(*rows: tuple[float, int, float, int]) -> list[HealthSample]:
    """(seconds ago, checkpoint, lag, behind) each."""
    return [HealthSample(int(NOW - ago * 1000), cp, lag, behind) for ago, cp, lag, behind in rows]


def test_a_projection_with_nothing_to_do_is_ok_never_a_false_alarm() -> None:
    still = samples(*[(s, 500, 0.0, 0) for s in range(0, 120, 1)])  # two minutes without an event
    health = classify(live(), still, NOW, T)
    assert health == Health(HealthState.OK, "Caught up.")


def test_a_catch_up_whose_lag_falls_is_ok_and_one_whose_lag_grows_warns() -> None:
    falling = samples(*[(30 - s, 1000 * s, 300.0 - 10 * s, 5000 - 100 * s) for s in range(0, 30)])
    catching_up = classify(live(events_behind=1000, behind_bounded=True, lag_seconds=11.0), falling, NOW, T)
    assert catching_up == Health(HealthState.OK, "Catching up: 1,000+ events behind, lag 11.0 s.")
    growing = samples(*[(30 - s, 1000 * s, 2.0 + s * 0.5, 10 + s) for s in range(0, 30)])
    health = classify(live(events_behind=40, lag_seconds=16.5), growing, NOW, T)
    assert health.state is HealthState.WARN and "Lag growing: 2.0 s → 16.5 s" in health.reason


def test_a_growing_lag_below_the_floor_or_over_too_short_a_span_is_not_a_warning() -> None:
    small = samples(*[(30 - s, s, 0.01 * s, 1) for s in range(0, 30)])
    assert classify(live(events_behind=1, lag_seconds=0.3), small, NOW, T).state is HealthState.OK
    short = samples(*[(5 - s, s, 10.0 + s, 5) for s in range(0, 5)])  # 5 s of a 30 s window
    assert classify(live(events_behind=5, lag_seconds=14), short, NOW, T).state is HealthState.OK


def test_events_waiting_and_a_checkpoint_that_does_not_move_is_stalled() -> None:
    stuck = samples(*[(s, 700, 3.0 + s, 12) for s in range(0, 25)])
    health = classify(live(events_behind=12, lag_seconds=3.0), stuck, NOW, T)
    assert health.state is HealthState.STALLED and "12 events waiting" in health.reason and "24 s" in health.reason
    moving_again = samples((0, 701, 1.0, 11), *[(s, 700, 3.0, 12) for s in range(1, 25)])
    assert classify(live(events_behind=11, lag_seconds=1.0), moving_again, NOW, T).state is HealthState.OK


def test_dead_stopped_and_rebuilding_come_from_the_status_with_their_reasons() -> None:
    assert classify(live(alive=False), [], NOW, T).state is HealthState.DEAD
    assert "run_projector" in classify(live(started=False, alive=False), [], NOW, T).reason
    stopped = classify(live(stopped_on="e-1 (TradeExecuted at 42)"), [], NOW, T)
    assert stopped.state is HealthState.STOPPED and "e-1" in stopped.reason and stopped.alarming
    rebuilding = classify(live(rebuilding="Redis lost the read models", events_behind=900), [], NOW, T)
    assert rebuilding == Health(HealthState.REBUILDING, "Redis lost the read models")
    assert classify(live(stall_error="EventStoreUnavailable: down"), [], NOW, T).state is HealthState.STALLED


def test_a_projection_no_canary_reaches_warns_though_its_lag_looks_fine() -> None:
    health = classify(live(canary_age_s=45.0), [], NOW, T)
    assert health.state is HealthState.WARN and "canary" in health.reason
    assert classify(live(canary_age_s=4.0), [], NOW, T).state is HealthState.OK


RULES = Rules(stall_resync_for_s=60, lag_resync_above_s=60, lag_resync_for_s=120, missing_rebuild_above=50)
STALLED = Health(HealthState.STALLED, "12 events waiting")
WARN = Health(HealthState.WARN, "Lag growing")
OK = Health(HealthState.OK, "Caught up.")


def test_stalled_resyncs_only_once_the_condition_held_long_enough() -> None:
    since, proposal = decide(STALLED, 3.0, Since(), None, NOW, RULES)
    assert since.stalled == NOW and proposal is None
    since, proposal = decide(STALLED, 3.0, since, None, NOW + 59_000, RULES)
    assert proposal is None
    since, proposal = decide(STALLED, 3.0, since, None, NOW + 60_000, RULES)
    assert proposal is not None and proposal.action == "resync" and proposal.rule == "stalled → resync"
    since, _ = decide(OK, 0.0, since, None, NOW + 61_000, RULES)
    assert since == Since()  # the clocks start again once the condition ends


def test_lag_resyncs_only_while_it_is_not_falling() -> None:
    since, _ = decide(OK, 500.0, Since(), None, NOW, RULES)  # a catch-up with a falling lag: left alone
    assert since.lag_high is None
    since, _ = decide(WARN, 90.0, Since(), None, NOW, RULES)
    _, proposal = decide(WARN, 95.0, since, None, NOW + 120_000, RULES)
    assert proposal is not None and proposal.rule == "lag → resync" and "95 s" in proposal.reason
    off = Rules(lag_resync=False)
    _, proposal = decide(WARN, 95.0, since, None, NOW + 120_000, off)
    assert proposal is None


def test_missing_read_models_are_repaired_or_the_projection_rebuilt() -> None:
    few = Missing("portfolio", 900, 200, 10, tuple(f"u{i}" for i in range(10)), False)
    _, proposal = decide(OK, 0.0, Since(), few, NOW, RULES)
    assert proposal is not None and proposal.action == "repair" and len(proposal.users) == 10
    most = Missing("portfolio", 900, 200, 150, tuple(f"u{i}" for i in range(150)), False)
    _, proposal = decide(OK, 0.0, Since(), most, NOW, RULES)
    assert proposal is not None and proposal.action == "rebuild" and "75 %" in proposal.reason
    emptied = Missing("market", 900, 0, 0, (), True)
    _, proposal = decide(OK, 0.0, Since(), emptied, NOW, RULES)
    assert proposal is not None and proposal.action == "rebuild" and "nothing is left" in proposal.reason


def test_one_event_behind_is_said_in_the_singular() -> None:
    assert classify(live(events_behind=1, lag_seconds=0.0), [], NOW, T).reason == "Catching up: 1 event behind, lag 0.0 s."


def test_a_growing_lag_with_one_sample_of_jitter_still_warns_and_a_falling_one_does_not() -> None:
    rows = [(30 - s, 1000 * s, 2.0 + s * 0.5, 10 + s) for s in range(0, 30)]
    rows[10] = (20, 10_000, rows[9][2] - 0.2, 19)  # one batch landed just before this sample
    assert classify(live(events_behind=40, lag_seconds=16.5), samples(*rows), NOW, T).state is HealthState.WARN
    sawtooth = samples(*[(30 - s, 1000 * s, 10.0 + (s % 2) * 3, 20) for s in range(0, 30)])  # up, down, up, down
    assert classify(live(events_behind=20, lag_seconds=10.0), sawtooth, NOW, T).state is HealthState.OK
