"""The `make run` demo: the whole thing working on the embedded SQLite default, in a minute.

It seeds two Pro accounts with a week of history in ``./demo/enforgate.db``, subscribes a local
receiver (which verifies every signature and prints each event), starts the real daemon
(``enforgate-webhooks run``) with a demo config, and plays live gateway traffic: blocked calls,
an approval that a human resolves, and an incident window with a call spike, a block-rate jump
and a never-seen tool. Ctrl-C stops all of it.

About the incident window: detectors judge closed, UTC-aligned windows (five minutes at the
finest). So that nobody waits for the current window to close, the demo writes the incident into
the window that has just closed, as late-committing rows, and sets the demo's settle delay so
that window is judged about 30 seconds after start. Everything else is the production path.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from delivery import EndpointStore, load_cipher
from scheduler.db import make_engine, upgrade
from scheduler.schema import accounts, activity_log, approvals

WINDOW = timedelta(minutes=5)
TOOLS = [
    ("github", "list_pull_requests"),
    ("github", "create_issue"),
    ("slack", "post_message"),
    ("jira", "create_ticket"),
    ("postgres", "run_query"),
]
# Calls per five minutes at the daily peak, per account: enough for every detector's guards.
PEAK_PER_WINDOW = {"acme": 160, "globex": 120}
BASE_DENY_SHARE = 0.02


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="demo", help="working folder (recreated)")
    parser.add_argument("--port", type=int, default=8787, help="the receiver's port")
    args = parser.parse_args()

    workdir = Path(args.dir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    now = datetime.now(UTC)
    current = _floor(now)
    # Judge the window that just closed ~30 s from now, whatever the time within the window.
    settle_s = int((now - current).total_seconds()) + 30
    config = workdir / "enforgate.toml"
    config.write_text(_config(workdir, settle_s))

    engine = make_engine(f"sqlite:///{workdir / 'enforgate.db'}")
    upgrade(engine)
    print("demo: seeding a week of history for two Pro accounts ...", flush=True)
    rng = random.Random(7)
    _seed(engine, now - timedelta(days=7), current - WINDOW, rng)

    store = EndpointStore(
        engine, load_cipher(workdir / "enforgate.key"), allow_insecure_localhost=True
    )
    base = f"http://127.0.0.1:{args.port}"
    acme = store.add("acme", f"{base}/acme")  # all four events
    globex = store.add("globex", f"{base}/globex", ["anomaly.detected"])
    secrets_file = workdir / "receiver-secrets.txt"
    secrets_file.write_text(f"{acme.secret}\n{globex.secret}\n")
    secrets_file.chmod(0o600)
    print(
        f"demo: endpoint {acme.endpoint.id} (acme, all events), "
        f"{globex.endpoint.id} (globex, anomaly.detected only)",
        flush=True,
    )

    env = {k: v for k, v in os.environ.items() if not k.startswith("ENFORGATE_")}
    bin_dir = Path(sys.executable).parent
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("receiver.py")),
                "--port",
                str(args.port),
                "--secrets-file",
                str(secrets_file),
            ],
            env=env,
        ),
    ]
    time.sleep(0.5)
    children.append(
        subprocess.Popen(
            [str(bin_dir / "enforgate-webhooks"), "--config", str(config), "run"], env=env
        )
    )
    stop = _stopper(children)
    try:
        time.sleep(2)
        _play(engine, current, rng, stop)
    finally:
        _shutdown(children)
        engine.dispose()


def _config(workdir: Path, settle_s: int) -> str:
    return f"""# The demo's config: short intervals, so that everything shows in a minute.
[database]
url = "sqlite:///{workdir / "enforgate.db"}"

[delivery]
allow_insecure_localhost = true
secret_key_file = "{workdir / "enforgate.key"}"
endpoints_refresh_s = 1

[scheduler]
tail_interval_s = 1

[metrics]
enabled = false

[detectors]
settle_delay_s = {settle_s}

[detectors.call_spike]
window_s = 300
interval_s = 5

[detectors.block_rate_jump]
window_s = 300
interval_s = 5

[detectors.new_tool]
window_s = 300
interval_s = 5
"""


def _floor(at: datetime) -> datetime:
    seconds = int(at.timestamp())
    return datetime.fromtimestamp(seconds - seconds % int(WINDOW.total_seconds()), UTC)


def _volume(account: str, window_start: datetime) -> float:
    """Calls in a window: a daily curve (busy afternoons) and quiet weekends."""
    hour = window_start.hour + window_start.minute / 60
    daily = 0.35 + 0.65 * max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.35
    weekly = 0.5 if window_start.weekday() >= 5 else 1.0
    return PEAK_PER_WINDOW[account] * daily * weekly


def _row(
    account: str,
    at: datetime,
    rng: random.Random,
    *,
    decision: str | None = None,
    server: str | None = None,
    tool: str | None = None,
) -> dict[str, Any]:
    if server is None or tool is None:
        server, tool = rng.choice(TOOLS)
    decision = decision or ("deny" if rng.random() < BASE_DENY_SHARE else "allow")
    return {
        "account_id": account,
        "created_at": at,
        "api_key_id": f"key_{account}",
        "server": server,
        "tool": tool,
        "decision": decision,
        "reason": f"policy forbids {tool} here" if decision == "deny" else None,
        "policy_id": "pol_default" if decision == "deny" else None,
        "rule_id": "rule_12" if decision == "deny" else None,
        # Only a hash of the arguments exists anywhere: the gateway never stores them.
        "args_hash": hashlib.sha256(
            f"{account}{at.timestamp()}{rng.random()}".encode()
        ).hexdigest(),
        "latency_ms": rng.randint(2, 40),
    }


def _seed(engine: sa.Engine, start: datetime, end: datetime, rng: random.Random) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(accounts),
            [
                {"id": a, "name": a.title(), "plan": "pro", "created_at": start}
                for a in PEAK_PER_WINDOW
            ],
        )
    window = _floor(start)
    rows: list[dict[str, Any]] = []
    while window < end:
        for account in PEAK_PER_WINDOW:
            for _ in range(_poisson(rng, _volume(account, window))):
                rows.append(_row(account, window + rng.random() * WINDOW, rng))
        if len(rows) > 20_000:
            _insert(engine, rows)
            rows = []
        window += WINDOW
    _insert(engine, rows)


def _insert(engine: sa.Engine, rows: list[dict[str, Any]]) -> list[int]:
    with engine.begin() as conn:
        if len(rows) == 1:
            return [conn.execute(sa.insert(activity_log).values(rows[0])).inserted_primary_key[0]]
        conn.execute(sa.insert(activity_log), rows)
    return []


def _poisson(rng: random.Random, mean: float) -> int:
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


def _play(engine: sa.Engine, current: datetime, rng: random.Random, stop: dict[str, bool]) -> None:
    """Live traffic, then the incidents, then normal traffic until Ctrl-C."""
    closed = current - WINDOW
    say = lambda text: print(f"demo: {text}", flush=True)  # noqa: E731
    say(
        "incident: a call spike and a new tool (acme) and a block-rate jump (globex), "
        "committing late into the window that just closed"
    )
    late: list[dict[str, Any]] = []
    for _ in range(int(_volume("acme", closed) * 4)):
        late.append(_row("acme", closed + rng.random() * WINDOW, rng, decision="allow"))
    late.append(
        _row(
            "acme",
            closed + WINDOW / 2,
            rng,
            decision="allow",
            server="github",
            tool="delete_repository",
        )
    )
    # Enough calls for the block-rate test's guards, not so many that it is also a spike.
    for i in range(max(90, int(_volume("globex", closed)))):
        decision = "deny" if i % 3 == 0 else "allow"
        late.append(_row("globex", closed + rng.random() * WINDOW, rng, decision=decision))
    late.sort(key=lambda r: r["created_at"])
    _insert(engine, late)

    say("a blocked call (acme): call.blocked in about a second")
    _insert(
        engine,
        [_row("acme", datetime.now(UTC), rng, decision="deny", server="github", tool="force_push")],
    )
    time.sleep(2)
    say("a call that needs approval (acme): approval.created, then a human approves it")
    call = _row(
        "acme",
        datetime.now(UTC),
        rng,
        decision="require_approval",
        server="postgres",
        tool="drop_table",
    )
    with engine.begin() as conn:
        call_id = conn.execute(sa.insert(activity_log).values(call)).inserted_primary_key[0]
        created = datetime.now(UTC)
        conn.execute(
            sa.insert(approvals).values(
                id=f"apr_{call_id}",
                account_id="acme",
                tool_call_id=call_id,
                server="postgres",
                tool="drop_table",
                args_hash=call["args_hash"],
                reason="destructive SQL",
                status="pending",
                created_at=created,
                expires_at=created + timedelta(minutes=15),
            )
        )
    time.sleep(4)
    with engine.begin() as conn:
        conn.execute(
            sa.update(approvals)
            .where(approvals.c.id == f"apr_{call_id}")
            .values(
                status="approved",
                method="dashboard",
                resolved_by="oncall@acme.example",
                resolved_at=datetime.now(UTC),
            )
        )
    say(
        "the incident window is judged ~30 s after start: anomaly.detected x3 follows. "
        "Ctrl-C to stop."
    )
    while not stop["now"]:
        now = datetime.now(UTC)
        rows = [
            _row(a, now, rng)
            for a in PEAK_PER_WINDOW
            for _ in range(_poisson(rng, _volume(a, now) / 300))
        ]
        if rows:
            _insert(engine, rows)
        time.sleep(1)


def _stopper(children: list[subprocess.Popen[bytes]]) -> dict[str, bool]:
    state = {"now": False}

    def handler(signum: int, _frame: object) -> None:
        state["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    return state


def _shutdown(children: list[subprocess.Popen[bytes]]) -> None:
    for child in reversed(children):  # the daemon first, so it can finish its deliveries
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
    print("demo: stopped", flush=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the demo ends
        main()
