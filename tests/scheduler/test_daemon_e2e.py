"""The real ``enforgate-webhooks run`` process, a real receiver, rows written as the gateway would.

Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from delivery import verify
from scheduler.state import tail_state
from tests.cli_runner import run_cli
from tests.gateway import activity_row, add_account, create_approval, log_calls, resolve_approval
from tests.receiver import Receiver, run_receiver

pytestmark = pytest.mark.slow

SCRIPT = str(Path(sys.executable).parent / "enforgate-webhooks")


class Daemon:
    """``enforgate-webhooks run`` as a child process."""

    def __init__(self, config: Path, engine: Engine, log: Path) -> None:
        self.config, self.engine, self.log_path = config, engine, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENFORGATE_")}
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [SCRIPT, "--config", str(self.config), "run"],
            stdout=self._log,
            stderr=self._log,
            env=env,
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log()}")
            try:
                with self.engine.connect() as conn:
                    n = conn.execute(sa.select(sa.func.count()).select_from(tail_state)).scalar()
                if n == 2 and "running" in self.log():
                    return
            except sa.exc.OperationalError:
                pass  # not migrated yet
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready in {timeout}s: {self.log()}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 10) -> str:
        """Wait until the daemon has logged ``text``; returns the whole log."""
        deadline = time.monotonic() + timeout
        while text not in self.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = self.log()
        assert text in log, log
        return log

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
            self._log.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with run_receiver() as r:
        yield r


@pytest.fixture
def setup(engine: Engine, database_url: str, tmp_path: Path, receiver: Receiver):  # type: ignore[no-untyped-def]
    config = tmp_path / "enforgate.toml"
    config.write_text(
        f"""
[database]
url = "{database_url}"
[delivery]
allow_insecure_localhost = true
secret_key_file = "{tmp_path / "enforgate.key"}"
timeout_s = 3
[scheduler]
tail_interval_s = 0.2
shutdown_deadline_s = 5
[metrics]
enabled = false
"""
    )
    add_account(engine, "acc_a", "pro")
    add_account(engine, "acc_b", "scale")
    added = run_cli(
        "--config",
        str(config),
        "endpoints",
        "add",
        "--account",
        "acc_a",
        "--url",
        receiver.url,
        "--json",
    )
    assert added.returncode == 0, added.stderr
    secret = json.loads(added.stdout)["secret"]
    daemons: list[Daemon] = []

    def start() -> Daemon:
        d = Daemon(config, engine, tmp_path / "daemon.log").start()
        daemons.append(d)
        return d

    yield config, secret, start
    for d in daemons:
        d.kill()


def _verified(receiver: Receiver, secret: str) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for r in receiver.events():
        verify(secret, r.headers, r.body)
        out.append(r.json)
    return out


def test_each_kind_of_event_arrives_once_signed_with_the_contract_fields(
    engine: Engine,
    receiver: Receiver,
    setup,  # type: ignore[no-untyped-def]
) -> None:
    _, secret, start = setup
    daemon = start()
    now = datetime.now(UTC)
    ids = log_calls(
        engine,
        [
            activity_row("acc_a", decision="deny", at=now),
            activity_row("acc_a", decision="allow", at=now),
            activity_row("acc_b", decision="deny", at=now),  # acc_b has no endpoint
        ],
    )
    create_approval(engine, "apr_1", "acc_a", ids[1], at=now)
    resolve_approval(engine, "apr_1", "denied", "dashboard", at=now + timedelta(milliseconds=5))
    receiver.wait_for(lambda got: len(got) >= 3)
    time.sleep(1)  # anything extra (a duplicate) would arrive by now
    events = _verified(receiver, secret)
    assert sorted(e["event"] for e in events) == [
        "approval.created",
        "approval.resolved",
        "call.blocked",
    ]
    by_type = {e["event"]: e["data"] for e in events}
    assert by_type["call.blocked"]["toolCallId"] == ids[0]
    assert by_type["call.blocked"]["accountId"] == "acc_a"
    assert by_type["approval.resolved"]["decision"] == "denied"
    assert by_type["approval.resolved"]["method"] == "dashboard"
    created_at = next(r for r in receiver.events() if r.event == "approval.created")
    resolved_at = next(r for r in receiver.events() if r.event == "approval.resolved")
    assert receiver.received.index(created_at) < receiver.received.index(resolved_at)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0


def test_kill_9_and_restart_loses_nothing_and_sends_nothing_twice(
    engine: Engine,
    receiver: Receiver,
    setup,  # type: ignore[no-untyped-def]
) -> None:
    _, _, start = setup
    daemon = start()
    written: list[int] = []
    for _ in range(10):
        written += log_calls(engine, [activity_row("acc_a", decision="deny") for _ in range(5)])
        time.sleep(0.05)
    receiver.wait_for(lambda got: len(got) == len(written))
    time.sleep(0.3)  # the outbox has recorded them as delivered
    # Committed just before the kill: the tail has not read these yet.
    written += log_calls(engine, [activity_row("acc_a", decision="deny") for _ in range(5)])
    daemon.kill()  # SIGKILL: no clean-up at all
    for _ in range(5):  # the gateway keeps writing while the daemon is down
        written += log_calls(engine, [activity_row("acc_a", decision="deny") for _ in range(5)])
    start()
    receiver.wait_for(lambda got: {r.json["data"]["toolCallId"] for r in got} >= set(written))
    time.sleep(1)
    counts = Counter(r.json["data"]["toolCallId"] for r in receiver.events("call.blocked"))
    assert set(counts) == set(written)
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]


def test_kill_9_during_deliveries_loses_nothing(
    engine: Engine,
    receiver: Receiver,
    setup,  # type: ignore[no-untyped-def]
) -> None:
    _, _, start = setup
    receiver.status = 200
    daemon = start()
    written = log_calls(engine, [activity_row("acc_a", decision="deny") for _ in range(30)])
    time.sleep(0.25)  # the tail has read them; deliveries are under way
    daemon.kill()
    start()
    got = receiver.wait_for(lambda got: {r.json["data"]["toolCallId"] for r in got} >= set(written))
    # At least once: an attempt cut off by the kill may be repeated, nothing is missing.
    assert {r.json["data"]["toolCallId"] for r in got} == set(written)


def test_rows_committed_out_of_id_order_are_delivered(
    engine: Engine,
    receiver: Receiver,
    setup,  # type: ignore[no-untyped-def]
) -> None:
    _, _, start = setup
    log_calls(engine, [activity_row("acc_a", row_id=1000)])
    start()
    log_calls(engine, [activity_row("acc_a", decision="deny", row_id=1002)])
    receiver.wait_for(lambda got: len(got) == 1)
    # 1001's writer committed late, after the tail had moved past it.
    log_calls(engine, [activity_row("acc_a", decision="deny", row_id=1001)])
    got = receiver.wait_for(lambda got: len(got) == 2)
    assert [r.json["data"]["toolCallId"] for r in got] == [1002, 1001]


def test_sighup_with_a_bad_config_keeps_the_old_one(
    engine: Engine,
    receiver: Receiver,
    setup,  # type: ignore[no-untyped-def]
) -> None:
    config, _, start = setup
    daemon = start()
    good = config.read_text()
    config.write_text(good.replace("tail_interval_s = 0.2", "tail_interval_s = -5"))
    daemon.signal(signal.SIGHUP)
    assert "scheduler.tail_interval_s = -5" in daemon.wait_for_log("reload refused")
    ids = log_calls(engine, [activity_row("acc_a", decision="deny")])
    got = receiver.wait_for(lambda got: len(got) == 1)
    assert got[0].json["data"]["toolCallId"] == ids[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0


def test_sighup_with_a_good_config_applies_it_without_a_restart(
    engine: Engine,
    receiver: Receiver,
    setup,  # type: ignore[no-untyped-def]
) -> None:
    config, _, start = setup
    daemon = start()
    config.write_text(config.read_text() + "[detectors.new_tool]\nenabled = false\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded the config")
    assert daemon.proc is not None
    assert daemon.proc.poll() is None
    ids = log_calls(engine, [activity_row("acc_a", decision="deny")])
    got = receiver.wait_for(lambda got: len(got) == 1)
    assert got[0].json["data"]["toolCallId"] == ids[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0


def test_sigterm_exits_0_within_the_deadline_even_with_a_hanging_receiver(
    engine: Engine,
    setup,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    config, _, start = setup
    import socket

    # A receiver that accepts connections and never answers.
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(100)
    port = hang.getsockname()[1]
    added = run_cli(
        "--config",
        str(config),
        "endpoints",
        "add",
        "--account",
        "acc_a",
        "--url",
        f"http://127.0.0.1:{port}/hang",
    )
    assert added.returncode == 0, added.stderr
    daemon = start()
    log_calls(engine, [activity_row("acc_a", decision="deny") for _ in range(3)])
    time.sleep(1.5)  # the deliveries are now hanging
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(20) == 0
    assert time.monotonic() - started < 5 + 3  # shutdown deadline + margin
    hang.close()


def test_run_once_sends_what_is_pending_and_exits(
    engine: Engine,
    receiver: Receiver,
    setup,  # type: ignore[no-untyped-def]
) -> None:
    config, _, _ = setup
    first = run_cli("--config", str(config), "run", "--once")
    assert first.returncode == 0, first.stderr
    ids = log_calls(engine, [activity_row("acc_a", decision="deny") for _ in range(2)])
    second = run_cli("--config", str(config), "run", "--once")
    assert second.returncode == 0, second.stderr
    assert sorted(r.json["data"]["toolCallId"] for r in receiver.events()) == ids
    third = run_cli("--config", str(config), "run", "--once")
    assert third.returncode == 0
    assert len(receiver.events()) == 2


def test_a_new_tool_arrives_as_anomaly_detected(
    engine: Engine,
    receiver: Receiver,
    setup,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    config, secret, start = setup
    config.write_text(
        config.read_text()
        + """
[detectors]
settle_delay_s = 0
[detectors.call_spike]
enabled = false
[detectors.block_rate_jump]
enabled = false
[detectors.new_tool]
window_s = 300
warmup_s = 86400
"""
    )
    now = datetime.now(UTC)
    closed_start = datetime.fromtimestamp(int(now.timestamp()) // 300 * 300 - 300, UTC)
    log_calls(
        engine, [activity_row("acc_a", tool="read", at=now - timedelta(days=d)) for d in (3, 2)]
    )
    # First seen in the window that has just closed: the daemon's first run judges it.
    log_calls(
        engine, [activity_row("acc_a", tool="delete_repo", at=closed_start + timedelta(seconds=10))]
    )
    daemon = start()
    got = receiver.wait_for(lambda got: any(r.event == "anomaly.detected" for r in got))
    anomaly = next(r for r in got if r.event == "anomaly.detected")
    verify(secret, anomaly.headers, anomaly.body)
    data = anomaly.json["data"]
    assert (data["type"], data["accountId"], data["tool"]) == ("new_tool", "acc_a", "delete_repo")
    assert set(data) == {
        "anomalyId",
        "accountId",
        "type",
        "severity",
        "windowStart",
        "windowEnd",
        "observed",
        "baseline",
        "threshold",
        "server",
        "tool",
        "summary",
        "detectedAt",
    }
    listed = run_cli("--config", str(config), "anomalies", "--json")
    assert [a["outcome"] for a in json.loads(listed.stdout)["anomalies"]] == ["sent"]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0


def test_metrics_count_deliveries_by_event_and_outcome(
    engine: Engine,
    receiver: Receiver,
    setup,  # type: ignore[no-untyped-def]
) -> None:
    import socket
    import urllib.request

    config, _, start = setup
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config.write_text(
        config.read_text().replace("enabled = false", f"enabled = true\nport = {port}")
    )
    start()
    log_calls(engine, [activity_row("acc_a", decision="deny")])
    receiver.wait_for(lambda got: len(got) == 1)
    line = 'enforgate_deliveries_total{event="call.blocked",outcome="ok"} 1.0'
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline and line not in text:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        time.sleep(0.1)
    assert line in text
    assert "enforgate_tail_lag_seconds" in text


@pytest.mark.postgres
def test_the_daemon_survives_a_database_restart(
    postgres_server,
    receiver: Receiver,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from scheduler.db import make_engine, upgrade

    url = postgres_server.create_database()
    engine = make_engine(url)
    upgrade(engine)
    config = tmp_path / "enforgate.toml"
    config.write_text(
        f"""
[database]
url = "{url}"
[delivery]
allow_insecure_localhost = true
secret_key_file = "{tmp_path / "k"}"
[scheduler]
tail_interval_s = 0.2
[metrics]
enabled = false
"""
    )
    add_account(engine, "acc_a")
    added = run_cli(
        "--config", str(config), "endpoints", "add", "--account", "acc_a", "--url", receiver.url
    )
    assert added.returncode == 0, added.stderr
    daemon = Daemon(config, engine, tmp_path / "daemon.log").start()
    try:
        before = log_calls(engine, [activity_row("acc_a", decision="deny")])
        receiver.wait_for(lambda got: len(got) == 1)
        engine.dispose()
        postgres_server.restart(pause_s=2)  # every connection drops; polls fail meanwhile
        after = log_calls(engine, [activity_row("acc_a", decision="deny")])
        got = receiver.wait_for(lambda got: len(got) == 2)
        assert [r.json["data"]["toolCallId"] for r in got] == before + after
        assert daemon.proc is not None
        assert daemon.proc.poll() is None
        assert "tail poll failed" in daemon.log()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(15) == 0
    finally:
        daemon.kill()
        engine.dispose()


def test_status_shows_endpoint_health_and_detector_runs(
    engine: Engine,
    receiver: Receiver,
    setup,  # type: ignore[no-untyped-def]
) -> None:
    config, _, _ = setup
    assert run_cli("--config", str(config), "run", "--once").returncode == 0
    log_calls(engine, [activity_row("acc_a", decision="deny")])
    assert run_cli("--config", str(config), "run", "--once").returncode == 0
    result = run_cli("--config", str(config), "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    [endpoint] = status["endpoints"]
    assert endpoint["lastDelivery"]["ok"] is True
    assert endpoint["lastDelivery"]["status"] == 200
    assert {d["detector"] for d in status["detectors"]} == {
        "call_spike",
        "block_rate_jump",
        "new_tool",
    }
    assert all(d["outcome"] == "ok" for d in status["detectors"])
    assert status["outboxPending"] == 0
    text = run_cli("--config", str(config), "status")
    assert "last delivery ok" in text.stdout
