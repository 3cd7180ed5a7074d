"""``enforgate-webhooks detect`` through the real command line, on a small seeded database."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from bench.synthetic import Incident, Profile, generate
from scheduler.db import make_engine, upgrade
from tests.cli_runner import run_cli
from tests.detectors.activity import T0


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two accounts, 14 days, one spike on day 10 at 11:00 and a new tool on day 11."""
    path = tmp_path_factory.mktemp("detect") / "seeded.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    spike_at = T0 + timedelta(days=10, hours=11)
    tool_at = T0 + timedelta(days=11, hours=9)
    generate(
        engine,
        T0,
        14,
        seed=3,
        profiles=[Profile("acct_a", 400), Profile("acct_b", 100, rhythm="always")],
        incidents=[
            Incident("call_spike", "acct_a", spike_at, spike_at + timedelta(hours=1), factor=6),
            Incident(
                "new_tool",
                "acct_b",
                tool_at,
                tool_at + timedelta(hours=1),
                tool=("shell", "exec"),
                calls=2,
            ),
        ],
    )
    engine.dispose()
    return path


def _detect(db: Path, *args: str) -> tuple[int, str, str]:
    result = run_cli("detect", *args, env={"ENFORGATE_DATABASE__URL": f"sqlite:///{db}"})
    return result.returncode, result.stdout, result.stderr


def test_json_prints_only_the_contracts_anomaly_data(seeded: Path) -> None:
    code, out, _ = _detect(seeded, "--from", "2026-06-08", "--to", "2026-06-15", "--json")
    assert code == 0
    document = json.loads(out)
    assert list(document) == ["anomalies"]
    found = {(a["type"], a["accountId"], a["windowStart"]) for a in document["anomalies"]}
    assert found == {
        ("call_spike", "acct_a", "2026-06-11T11:00:00.000Z"),
        ("new_tool", "acct_b", "2026-06-12T09:00:00.000Z"),
    }
    spike = next(a for a in document["anomalies"] if a["type"] == "call_spike")
    assert set(spike) == {
        "anomalyId", "accountId", "type", "severity", "windowStart", "windowEnd", "observed",
        "baseline", "threshold", "server", "tool", "summary", "detectedAt",
    }  # fmt: skip
    assert spike["detectedAt"] == "2026-06-11T12:02:00.000Z"  # window end + settle delay


def test_the_table_and_the_plot(seeded: Path, tmp_path: Path) -> None:
    png = tmp_path / "detect.png"
    code, out, err = _detect(
        seeded, "--from", "2026-06-08", "--to", "2026-06-15", "--account", "acct_a", "--plot",
        str(png),
    )  # fmt: skip
    assert code == 0, err
    assert "call_spike" in out
    assert "acct_b" not in out
    assert "call_spike: 1 anomalies in 168 windows" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bad_time_exits_2_with_a_clear_message(seeded: Path) -> None:
    code, out, err = _detect(seeded, "--from", "yesterday", "--to", "2026-06-15")
    assert code == 2
    assert "--from 'yesterday': not an ISO 8601 date or time" in err
    assert out == ""
    code, _, err = _detect(seeded, "--from", "2026-06-15", "--to", "2026-06-08")
    assert code == 2
    assert "must be after --from" in err


def test_an_invalid_detector_setting_exits_2_naming_file_key_and_value(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[detectors.call_spike]\nmin_ratio = 0.5\n")
    result = run_cli(
        "--config", str(config), "detect", "--from", "2026-06-08", "--to", "2026-06-09"
    )
    assert result.returncode == 2
    assert str(config) in result.stderr
    assert "detectors.call_spike.min_ratio = 0.5" in result.stderr
    assert "greater than or equal to 1" in result.stderr
    assert "Traceback" not in result.stderr
