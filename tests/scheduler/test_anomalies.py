"""Recording anomalies: fingerprint dedupe, cooldown, escalation, catch-up age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from detectors import Anomaly
from scheduler.anomalies import Outcome, list_recorded, record

T0 = datetime(2026, 6, 19, 12, 0, tzinfo=UTC)
COOLDOWN = timedelta(hours=1)
MAX_AGE = timedelta(hours=6)


def spike(window_end: datetime, severity: str = "low", account: str = "acc_a") -> Anomaly:
    return Anomaly(
        type="call_spike",
        account_id=account,
        server=None,
        tool=None,
        window_start=window_end - timedelta(hours=1),
        window_end=window_end,
        observed=900,
        baseline=100,
        threshold=300,
        severity=severity,  # type: ignore[arg-type]
        summary="900 calls vs 100 usual",
    )


def _record(engine: Engine, anomaly: Anomaly, now: datetime) -> list[Outcome]:
    with engine.begin() as conn:
        recorded, _ = record(
            conn,
            [(anomaly, {"anomalyId": anomaly.anomaly_id})],
            now,
            cooldown=COOLDOWN,
            max_age=MAX_AGE,
        )
    return [r.outcome for r in recorded]


def test_the_same_anomaly_found_twice_is_recorded_once(engine: Engine) -> None:
    assert _record(engine, spike(T0), T0) == [Outcome.SENT]
    assert _record(engine, spike(T0), T0 + timedelta(minutes=5)) == []


def test_a_continuing_incident_is_suppressed_within_the_cooldown(engine: Engine) -> None:
    assert _record(engine, spike(T0), T0) == [Outcome.SENT]
    next_window = T0 + timedelta(hours=1)
    assert _record(engine, spike(next_window), next_window - timedelta(minutes=30)) == [
        Outcome.SUPPRESSED_COOLDOWN
    ]


def test_a_worse_anomaly_goes_out_within_the_cooldown(engine: Engine) -> None:
    assert _record(engine, spike(T0, "low"), T0) == [Outcome.SENT]
    later = T0 + timedelta(minutes=10)
    assert _record(engine, spike(T0 + timedelta(hours=1), "high"), later) == [Outcome.SENT]


def test_after_the_cooldown_the_next_one_is_sent(engine: Engine) -> None:
    assert _record(engine, spike(T0), T0) == [Outcome.SENT]
    later = T0 + COOLDOWN + timedelta(minutes=1)
    assert _record(engine, spike(T0 + timedelta(hours=1)), later) == [Outcome.SENT]


def test_the_cooldown_is_per_account(engine: Engine) -> None:
    assert _record(engine, spike(T0, account="acc_a"), T0) == [Outcome.SENT]
    assert _record(engine, spike(T0, account="acc_b"), T0) == [Outcome.SENT]


def test_a_window_older_than_the_catch_up_age_is_recorded_as_skipped(engine: Engine) -> None:
    old = spike(T0 - MAX_AGE - timedelta(hours=1))
    assert _record(engine, old, T0) == [Outcome.SKIPPED_TOO_OLD]
    listed = list_recorded(engine)
    assert [a["outcome"] for a in listed] == ["skipped_too_old"]
    assert listed[0]["anomalyId"] == old.anomaly_id
