"""The rollups, the known pairs and the Detection glue, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from detectors import DetectorsConfig
from scheduler.detection import Detection, backtest
from scheduler.rollups import Rollups, rollup_accounts, rollup_tools
from tests.detectors.activity import T0, call, insert, steady

H = timedelta(hours=1)


def _account_counts(engine: Engine) -> dict[int, tuple[int, int]]:
    r = rollup_accounts.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(r.bucket, r.calls, r.denied).where(r.account_id == "a").order_by(r.bucket)
        )
        return {int(b): (int(c), int(d)) for b, c, d in rows}


def test_a_refresh_counts_calls_and_denied_calls_per_bucket(engine: Engine) -> None:
    insert(
        engine,
        [
            call("a", T0 + timedelta(minutes=1)),
            call("a", T0 + timedelta(minutes=2), decision="deny"),
            call("a", T0 + timedelta(minutes=7), tool="delete_repo"),
            call("b", T0 + timedelta(minutes=3)),
        ],
    )
    stats = Rollups(engine).refresh(T0 + H, reread_margin_s=900)
    assert (stats.rows, stats.malformed) == (4, 0)
    base = int(T0.timestamp())
    assert _account_counts(engine) == {base: (2, 1), base + 300: (1, 0)}
    with engine.connect() as conn:
        tools = conn.execute(sa.select(sa.func.count()).select_from(rollup_tools)).scalar()
    assert tools == 3


def test_rows_with_an_unknown_decision_are_counted_and_skipped(engine: Engine) -> None:
    insert(engine, [call("a", T0), call("a", T0, decision="maybe")])
    stats = Rollups(engine).refresh(T0 + H, reread_margin_s=900)
    assert (stats.rows, stats.malformed) == (1, 1)
    assert _account_counts(engine) == {int(T0.timestamp()): (1, 0)}


def test_a_late_row_within_the_margin_is_counted_once(engine: Engine) -> None:
    rollups = Rollups(engine)
    insert(engine, [call("a", T0 + timedelta(minutes=50))])
    rollups.refresh(T0 + H, reread_margin_s=900)
    # Committed after the refresh, stamped before it: the next refresh re-reads the margin.
    insert(
        engine, [call("a", T0 + timedelta(minutes=55)), call("a", T0 + 61 * timedelta(minutes=1))]
    )
    rollups.refresh(T0 + 2 * H, reread_margin_s=900)
    rollups.refresh(T0 + 2 * H, reread_margin_s=900)
    counts = _account_counts(engine)
    assert sum(c for c, _ in counts.values()) == 3


def test_a_regular_refresh_reads_only_from_the_margin_before_the_last(engine: Engine) -> None:
    rollups = Rollups(engine)
    insert(engine, steady("a", T0, 48, 4))
    first = rollups.refresh(T0 + 48 * H, reread_margin_s=900)
    assert first.read_from == T0
    assert first.rows == 192
    again = rollups.refresh(T0 + 49 * H, reread_margin_s=900)
    assert again.read_from == T0 + 48 * H - timedelta(minutes=15)
    assert again.rows == 1  # only the call at 23:45, inside the re-read margin
    assert sum(c for c, _ in _account_counts(engine).values()) == 192


def _spiky_history(engine: Engine) -> None:
    rows = steady("a", T0, 9 * 24, 20)
    rows += steady("a", T0 + 8 * 24 * H + 10 * H, 1, 180)  # 200 calls at day 8, 10:00
    insert(engine, rows)


def test_judge_finds_a_spike_from_the_rollups(engine: Engine) -> None:
    _spiky_history(engine)
    detection = Detection(engine, DetectorsConfig())
    detection.refresh(T0 + 9 * 24 * H)
    at = T0 + 8 * 24 * H + 10 * H
    [anomaly] = detection.judge("call_spike", at, at + H)
    assert (anomaly.account_id, anomaly.observed, anomaly.baseline) == ("a", 200, 20)
    assert detection.judge("call_spike", at + H, at + 2 * H) == []


def test_judge_does_not_peek_past_the_window(engine: Engine) -> None:
    _spiky_history(engine)
    detection = Detection(engine, DetectorsConfig())
    detection.refresh(T0 + 9 * 24 * H)
    at = T0 + 8 * 24 * H + 9 * H  # the hour before the spike
    assert detection.judge("call_spike", at, at + H) == []


def test_the_backtest_finds_what_the_scheduled_runs_find(engine: Engine) -> None:
    _spiky_history(engine)
    insert(engine, [call("a", T0 + 8 * 24 * H + 15 * H, tool="delete_repo")])
    config = DetectorsConfig()
    detection = Detection(engine, config)
    detection.refresh(T0 + 10 * 24 * H)
    start, end = T0 + 7 * 24 * H, T0 + 9 * 24 * H
    scheduled = []
    for name in detection.detector_names():
        w = timedelta(seconds=config.detector(name).window_s)
        t = start
        while t < end:
            scheduled += detection.judge(name, t, t + w)
            t += w
    replayed = [f.anomaly for f in backtest(engine, config, start, end).found]
    assert sorted(a.anomaly_id for a in replayed) == sorted(a.anomaly_id for a in scheduled)
    assert {a.type for a in replayed} == {"call_spike", "new_tool"}


def test_a_new_tool_is_reported_once_even_across_a_restart(engine: Engine) -> None:
    insert(engine, steady("a", T0, 5 * 24, 2))
    at = T0 + 5 * 24 * H
    insert(engine, [call("a", at + timedelta(minutes=1), tool="delete_repo")])
    insert(engine, [call("a", at + timedelta(minutes=6), tool="delete_repo")])
    config = DetectorsConfig()
    first = Detection(engine, config)
    first.refresh(at + H)
    five = timedelta(minutes=5)
    [anomaly] = first.judge("new_tool", at, at + five)
    assert anomaly.tool == "delete_repo"
    restarted = Detection(engine, config)
    assert restarted.judge("new_tool", at, at + five) == []
    assert restarted.judge("new_tool", at + five, at + 2 * five) == []


def test_a_first_start_on_an_existing_history_reports_no_old_tool(engine: Engine) -> None:
    insert(engine, steady("a", T0, 5 * 24, 2))
    insert(engine, steady("a", T0 + 24 * H, 1, 1, tool="old_tool"))
    at = T0 + 5 * 24 * H
    insert(engine, [call("a", at + timedelta(minutes=1), tool="old_tool")])
    detection = Detection(engine, DetectorsConfig())
    detection.refresh(at + H)
    assert detection.judge("new_tool", at, at + timedelta(minutes=5)) == []


def test_due_windows_wait_for_the_settle_delay() -> None:
    detection = Detection(sa.create_engine("sqlite://"), DetectorsConfig())
    t = T0 + 10 * H
    assert detection.due_windows("call_spike", None, t + timedelta(seconds=119)) == [
        (t - 2 * H, t - H)
    ]
    assert detection.due_windows("call_spike", None, t + timedelta(seconds=120)) == [(t - H, t)]
    assert detection.due_windows("call_spike", t - 3 * H, t + timedelta(seconds=120)) == [
        (t - 3 * H, t - 2 * H),
        (t - 2 * H, t - H),
        (t - H, t),
    ]
    assert len(detection.due_windows("new_tool", t - H, t + timedelta(minutes=2))) == 12


def test_disabled_detectors_are_not_scheduled() -> None:
    config = DetectorsConfig.model_validate({"block_rate_jump": {"enabled": False}})
    detection = Detection(sa.create_engine("sqlite://"), config)
    assert detection.detector_names() == ["call_spike", "new_tool"]
    assert detection.intervals() == {"call_spike": 60.0, "new_tool": 60.0}
