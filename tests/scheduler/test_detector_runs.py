"""Scheduled detector runs with a frozen clock: settle delay, catch-up, age limit, dedupe.

Uses the ``new_tool`` detector, whose verdict is easiest to build by hand: an account with days
of history uses a (server, tool) pair for the first time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from freezegun import freeze_time
from sqlalchemy import Engine

from detectors import DetectorsConfig
from scheduler.config import LoadedSettings, Settings
from scheduler.daemon import Daemon
from scheduler.state import anomalies, detector_runs, outbox
from tests.gateway import activity_row, add_account, log_calls

W = datetime(2026, 6, 19, 12, 0, tzinfo=UTC)  # a window boundary (5-minute windows)
SETTLE = timedelta(seconds=120)


def _daemon(engine: Engine, database_url: str, tmp_path: Path, **scheduler: object) -> Daemon:
    settings = Settings.model_validate(
        {
            "database": {"url": database_url},
            "delivery": {"secret_key_file": str(tmp_path / "k")},
            "detectors": {
                "settle_delay_s": int(SETTLE.total_seconds()),
                "call_spike": {"enabled": False},
                "block_rate_jump": {"enabled": False},
                "new_tool": {"window_s": 300, "warmup_s": 86_400},
            },
            "scheduler": scheduler,
            "metrics": {"enabled": False},
        }
    )
    assert isinstance(settings.detectors, DetectorsConfig)
    return Daemon(LoadedSettings(settings, "test", ()), engine)


def _seed(engine: Engine) -> None:
    add_account(engine, "acc_a")
    history = [activity_row("acc_a", tool="read", at=W - timedelta(days=d)) for d in (4, 3, 2, 1)]
    log_calls(engine, history)


def _run(daemon: Daemon, at: datetime) -> None:
    with freeze_time(at, real_asyncio=True):
        asyncio.run(daemon.run_detector("new_tool"))


def _outcomes(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(anomalies.c.tool, anomalies.c.outcome))]


def _sent(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(outbox)
                .where(outbox.c.event_type == "anomaly.detected")
            ).scalar()
            or 0
        )


def _last_window(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(detector_runs.c.last_window_end).where(detector_runs.c.detector == "new_tool")
        ).scalar()


def test_a_window_is_judged_only_after_its_settle_delay(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    _seed(engine)
    daemon = _daemon(engine, database_url, tmp_path)
    _run(daemon, W)  # first run: judges the latest closed window, [W-5m, W)
    log_calls(engine, [activity_row("acc_a", tool="delete_repo", at=W + timedelta(minutes=1))])
    _run(daemon, W + timedelta(minutes=5) + SETTLE - timedelta(seconds=1))
    assert _outcomes(engine) == []
    _run(daemon, W + timedelta(minutes=5) + SETTLE + timedelta(seconds=1))
    assert _outcomes(engine) == [("delete_repo", "sent")]
    assert _sent(engine) == 1


def test_the_same_anomaly_is_never_sent_twice_even_after_a_restart(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    _seed(engine)
    _run(_daemon(engine, database_url, tmp_path), W)
    log_calls(engine, [activity_row("acc_a", tool="delete_repo", at=W + timedelta(minutes=1))])
    after = W + timedelta(minutes=5) + SETTLE + timedelta(seconds=1)
    _run(_daemon(engine, database_url, tmp_path), after)
    _run(_daemon(engine, database_url, tmp_path), after + timedelta(minutes=10))
    # Forget the progress, as a re-run over the same window would: still recognised.
    with engine.begin() as conn:
        conn.execute(sa.update(detector_runs).values(last_window_end=W))
    _run(_daemon(engine, database_url, tmp_path), after + timedelta(minutes=20))
    assert _outcomes(engine) == [("delete_repo", "sent")]
    assert _sent(engine) == 1


def test_after_downtime_the_missed_windows_are_caught_up(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    _seed(engine)
    _run(_daemon(engine, database_url, tmp_path), W)
    log_calls(engine, [activity_row("acc_a", tool="delete_repo", at=W + timedelta(minutes=31))])
    back = W + timedelta(hours=1) + SETTLE + timedelta(seconds=1)
    _run(_daemon(engine, database_url, tmp_path), back)
    assert _last_window(engine) == W + timedelta(hours=1)
    assert _outcomes(engine) == [("delete_repo", "sent")]


def test_anomalies_in_windows_older_than_the_catch_up_age_are_recorded_as_skipped(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    _seed(engine)
    _run(_daemon(engine, database_url, tmp_path), W)
    log_calls(engine, [activity_row("acc_a", tool="delete_repo", at=W + timedelta(minutes=1))])
    back = W + timedelta(hours=3)
    _run(_daemon(engine, database_url, tmp_path, max_catchup_age_s=3600), back)
    assert _outcomes(engine) == [("delete_repo", "skipped_too_old")]
    assert _sent(engine) == 0


def test_a_failed_run_is_recorded_and_the_next_run_retries(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    _seed(engine)
    daemon = _daemon(engine, database_url, tmp_path)
    _run(daemon, W)
    log_calls(engine, [activity_row("acc_a", tool="delete_repo", at=W + timedelta(minutes=1))])
    original = daemon.detection.judge

    def broken(*args: object, **kwargs: object) -> list[object]:
        raise ConnectionError("database went away")

    daemon.detection.judge = broken  # type: ignore[method-assign, assignment]
    after = W + timedelta(minutes=5) + SETTLE + timedelta(seconds=1)
    _run(daemon, after)
    with engine.connect() as conn:
        run = conn.execute(sa.select(detector_runs)).one()
    assert run.last_outcome == "failed"
    assert "database went away" in run.last_error
    daemon.detection.judge = original  # type: ignore[method-assign]
    _run(daemon, after + timedelta(seconds=60))
    assert _outcomes(engine) == [("delete_repo", "sent")]
