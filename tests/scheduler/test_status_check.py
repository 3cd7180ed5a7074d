"""``status --check``: a health check with an exit code, for probes and cron."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine

from scheduler.state import detector_runs
from tests.cli_runner import run_cli


def _config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "enforgate.toml"
    path.write_text(
        f'[database]\nurl = "{database_url}"\n[delivery]\nsecret_key_file = "{tmp_path / "k"}"\n'
    )
    return path


def _run(engine: Engine, detector: str, outcome: str, error: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(detector_runs).values(
                detector=detector,
                last_run_at=datetime.now(UTC),
                last_outcome=outcome,
                last_error=error,
                last_duration_s=0.1,
                last_anomalies=0,
            )
        )


def test_healthy_when_every_detector_last_ran_ok(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    _run(engine, "call_spike", "ok")
    result = run_cli("--config", str(_config(tmp_path, database_url)), "status", "--check")
    assert result.returncode == 0, result.stderr


def test_a_failed_detector_run_makes_the_check_exit_1(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    _run(engine, "call_spike", "ok")
    _run(engine, "new_tool", "failed", "OperationalError: database is locked")
    result = run_cli("--config", str(_config(tmp_path, database_url)), "status", "--check")
    assert result.returncode == 1
    assert "unhealthy: the last run of new_tool failed" in result.stderr
    assert "error: OperationalError: database is locked" in result.stdout
