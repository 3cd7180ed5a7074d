"""Daemon benchmark (issue 4): ``python -m bench.daemon_bench [--soak-seconds N] [--quick]``.

1. The in-process hook: a :class:`scheduler.daemon.Daemon` in this process, built as
   ``enforgate-webhooks run`` builds it, on its own SQLite file; ``daemon.hooks.call_blocked()``
   a few ms apart, latency from the call to the signed ``call.blocked`` read by the receiver
   (target p99 <= 20 ms).
2. The tail: the real ``enforgate-webhooks run`` process (default ``tail_interval_s = 1``,
   SQLite), ``deny`` rows written as the gateway would, each in its own transaction; latency from
   the commit to the delivery read by the receiver (target p50 <= 1.2 s, p99 <= 2 s).
3. The soak, same process: 1,000 activity rows/s (10% ``deny``) in a batch every 20 ms, several
   ``pro`` accounts with 3 endpoints each; then every deny x 3 endpoints is counted at the
   receiver (target: none lost, none duplicated) and the daemon's RSS, sampled every 10 s, must
   stay flat.

The receiver is a raw asyncio HTTP/1.1 keep-alive server in another process
(:mod:`bench._receiver`) that verifies every signature and stamps each request with
``time.time()`` as it is read. Loopback only. Figures are printed next to their targets; nothing
here fails a build (exit 0 even when a target is MISSED).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import Engine

from delivery import EndpointStore, load_cipher
from scheduler.config import load_settings
from scheduler.db import make_engine, upgrade
from scheduler.schema import accounts, activity_log
from scheduler.state import outbox, tail_state

# The targets.
TAIL_P50_TARGET_S = 1.2
TAIL_P99_TARGET_S = 2.0
HOOK_P99_TARGET_S = 0.020
SOAK_ROWS_PER_S = 1_000
DENY_SHARE = 0.10
ENDPOINTS_PER_ACCOUNT = 3
# "Several accounts": enough that fan-out spreads over 12 endpoints, few enough to read.
SOAK_ACCOUNTS = 4
# A gateway commits its log in small batches; 20 ms x 1,000 rows/s is 20 rows a transaction.
SOAK_BATCH_EVERY_S = 0.02
RSS_EVERY_S = 10.0
PROGRESS_EVERY_S = 30.0
# Flat: the last sample at most this much above the first one after the warm-up.
RSS_FLAT_FACTOR = 1.2
RSS_WARMUP_S = 60.0
# Spacing of the tail-latency rows: random, so the rows do not lock in phase with the 1 s poll.
TAIL_SPACING_S = (0.04, 0.16)
HOOK_SPACING_S = 0.005
# Hook tool-call ids live far above the activity_log ids, so the two never mix at the receiver.
HOOK_ID_BASE = 1_000_000_000
# How long the end of a phase waits for its deliveries, and for no further progress.
BACKLOG_TIMEOUT_S = 120.0
BACKLOG_STALL_S = 15.0
# After everything expected arrived, a duplicate would arrive within this.
DUPLICATE_GRACE_S = 2.0

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "enforgate-webhooks"


# -- output -----------------------------------------------------------------------------------


def line(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    verdict = "" if ok is None else ("  OK" if ok else "  MISSED")
    target = f"({target})" if target else ""
    print(f"  {name:<44} {value:>16}   {target}{verdict}", flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (``q`` in 0..1); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


# -- the receiver (another process) ---------------------------------------------------------


class Delivery(NamedTuple):
    received: float  # time.time() in the receiver when the request was read
    event: str
    tool_call_id: int | None
    path: str
    verified: str  # "1", "0" (bad signature) or "-" (no secret registered)


class Receiver:
    """``bench._receiver`` as a child process; collects what it reports."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench._receiver"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().split()
        if len(first) != 2 or first[0] != "port":
            self.close()
            raise RuntimeError(f"the receiver did not start: {first}")
        self.port = int(first[1])
        self._lock = threading.Lock()
        self._got: list[Delivery] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
            parts = text.split()
            if len(parts) != 6 or parts[0] != "r":
                continue
            tool_call_id = int(parts[3]) if parts[3].isdigit() else None
            delivery = Delivery(float(parts[1]), parts[2], tool_call_id, parts[4], parts[5])
            with self._lock:
                self._got.append(delivery)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def register(self, path: str, secret: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"secret {path} {secret}\n")
        self.proc.stdin.flush()

    def count(self) -> int:
        with self._lock:
            return len(self._got)

    def deliveries(self, since: int = 0) -> list[Delivery]:
        """What arrived, from the ``since``-th request on."""
        with self._lock:
            return self._got[since:]

    def wait_for(self, count: int, timeout: float = BACKLOG_TIMEOUT_S) -> float:
        """Wait until ``count`` requests arrived in all, or progress stalls; seconds waited."""
        started = last_progress = time.monotonic()
        seen = self.count()
        while seen < count:
            now = time.monotonic()
            if now - started > timeout or now - last_progress > BACKLOG_STALL_S:
                break
            time.sleep(0.05)
            if self.count() != seen:
                seen, last_progress = self.count(), time.monotonic()
        return time.monotonic() - started

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # the receiver exits when its stdin closes
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# -- the database, as the gateway writes it -------------------------------------------------


@dataclass
class Site:
    """One SQLite database with its config file, accounts and endpoints on the receiver."""

    directory: Path
    name: str
    config: Path = field(init=False)
    engine: Engine = field(init=False)
    paths: dict[str, list[str]] = field(default_factory=dict)  # account -> endpoint paths

    def __post_init__(self) -> None:
        self.config = self.directory / f"{self.name}.toml"
        self.config.write_text(
            f"""# daemon_bench: defaults except what a local benchmark needs
[database]
url = "sqlite:///{self.directory / f"{self.name}.db"}"
[delivery]
allow_insecure_localhost = true
secret_key_file = "{self.directory / f"{self.name}.key"}"
[metrics]
enabled = false
"""
        )
        self.engine = make_engine(load_settings(self.config, environ={}).settings.database.url)
        upgrade(self.engine)

    def add_accounts(self, receiver: Receiver, count: int, endpoints: int) -> None:
        key_file = self.directory / f"{self.name}.key"
        store = EndpointStore(
            self.engine, load_cipher(key_file, environ={}), allow_insecure_localhost=True
        )
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            for i in range(count):
                account = f"acc_{self.name}_{i}"
                conn.execute(
                    sa.insert(accounts).values(id=account, name=account, plan="pro", created_at=now)
                )
        for i in range(count):
            account = f"acc_{self.name}_{i}"
            self.paths[account] = []
            for j in range(endpoints):
                path = f"/{self.name}/{account}/{j}"
                created = store.add(account, receiver.url(path), ["call.blocked"])
                receiver.register(path, created.secret)
                self.paths[account].append(path)

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar()


_ARGS_HASHES = [hashlib.sha256(f"args-{i}".encode()).hexdigest() for i in range(64)]


class Gateway:
    """Writes ``activity_log`` rows as the gateway does and remembers when each deny committed."""

    def __init__(self, engine: Engine, account_ids: Sequence[str], seed: int = 4) -> None:
        self.engine = engine
        self.account_ids = list(account_ids)
        self.rng = random.Random(seed)
        self.next_id = 1  # this bench is the only writer of activity_log
        self.committed: dict[int, float] = {}  # deny id -> time.time() just after its commit
        self.account_of: dict[int, str] = {}
        self.rows = 0

    def _row(self, decision: str) -> dict[str, Any]:
        row_id, self.next_id = self.next_id, self.next_id + 1
        account = self.rng.choice(self.account_ids)
        if decision == "deny":
            self.account_of[row_id] = account
        return {
            "id": row_id,
            "account_id": account,
            "created_at": datetime.now(UTC),
            "api_key_id": "key_bench",
            "server": "github",
            "tool": "delete_repository" if decision == "deny" else "list_issues",
            "decision": decision,
            "reason": "blocked by policy no-destructive-ops" if decision == "deny" else None,
            "policy_id": "pol_1" if decision == "deny" else None,
            "rule_id": "rule_7" if decision == "deny" else None,
            "args_hash": _ARGS_HASHES[row_id % len(_ARGS_HASHES)],
            "latency_ms": 3,
        }

    def write(self, decisions: Sequence[str]) -> None:
        """One transaction with one row per decision."""
        rows = [self._row(d) for d in decisions]
        with self.engine.begin() as conn:
            conn.execute(sa.insert(activity_log), rows)
        at = time.time()
        self.rows += len(rows)
        for row in rows:
            if row["decision"] == "deny":
                self.committed[row["id"]] = at

    def decisions(self, count: int) -> list[str]:
        return ["deny" if self.rng.random() < DENY_SHARE else "allow" for _ in range(count)]


# -- the daemon process ------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) used so far; NaN if it is gone."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return math.nan


def machine_busy_s() -> float:
    """CPU seconds all CPUs spent busy (not idle, not waiting for I/O) since boot."""
    with open("/proc/stat") as fh:
        ticks = [int(v) for v in fh.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class DaemonProcess:
    """``enforgate-webhooks run`` as a child process, its log in a file."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.log_path = site.directory / f"{site.name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENFORGATE_")}
        command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "scheduler.cli"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*command, "--config", str(site.config), "run"],
                cwd=site.directory,
                stdout=log,
                stderr=log,
                env=env,
            )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.log()[-2000:]}")
            with self.site.engine.connect() as conn:
                started = conn.execute(sa.select(sa.func.count()).select_from(tail_state)).scalar()
            if started == 2 and "running" in self.log():
                return
            time.sleep(0.1)
        raise RuntimeError(f"daemon not ready in {timeout:.0f} s: {self.log()[-2000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_mib(self) -> float:
        with contextlib.suppress(OSError), open(f"/proc/{self.proc.pid}/status") as fh:
            for text in fh:
                if text.startswith("VmRSS:"):
                    return int(text.split()[1]) / 1024
        return math.nan

    def cpu_s(self) -> float:
        return cpu_s(self.proc.pid)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return None
        return self.proc.returncode


# -- 1. the in-process hook ---------------------------------------------------------------------


async def _drive_hooks(
    site: Site, receiver: Receiver, calls: int
) -> tuple[dict[int, float], list[float]]:
    from scheduler.daemon import Daemon  # as `run` does: httpx and APScheduler only when needed

    daemon = Daemon(load_settings(site.config, environ={}), site.engine, config_path=site.config)
    serving = asyncio.create_task(daemon.serve())
    while True:
        if serving.done():
            raise RuntimeError(f"the in-process daemon stopped early: {serving.result()}")
        try:
            hooks = daemon.hooks
            break
        except RuntimeError:
            await asyncio.sleep(0.01)
    account = next(iter(site.paths))
    called: dict[int, float] = {}
    call_cost: list[float] = []

    async def call(tool_call_id: int) -> None:
        started = time.perf_counter()
        called[tool_call_id] = time.time()
        hooks.call_blocked(
            tool_call_id=tool_call_id,
            account_id=account,
            server="github",
            tool="delete_repository",
            args_hash=_ARGS_HASHES[tool_call_id % len(_ARGS_HASHES)],
            reason="blocked by policy no-destructive-ops",
            policy_id="pol_1",
            rule_id="rule_7",
        )
        call_cost.append(time.perf_counter() - started)
        await asyncio.sleep(HOOK_SPACING_S)

    try:
        # Warm-up: the daemon's first events open the connections and read the endpoints.
        warmup = 20
        for i in range(warmup):
            await call(HOOK_ID_BASE - warmup + i)
        await asyncio.to_thread(receiver.wait_for, warmup, 30)
        called.clear()
        call_cost.clear()
        before = receiver.count()
        for i in range(calls):
            await call(HOOK_ID_BASE + i)
        await asyncio.to_thread(receiver.wait_for, before + calls, 30)
    finally:
        daemon.request_stop()
        await serving
    return called, call_cost


def bench_hook(directory: Path, receiver: Receiver, calls: int) -> None:
    site = Site(directory, "hook")
    site.add_accounts(receiver, 1, 1)
    try:
        called, call_cost = asyncio.run(_drive_hooks(site, receiver, calls))
    finally:
        site.engine.dispose()
    got = [d for d in receiver.deliveries() if d.path.startswith("/hook/")]
    first: dict[int, float] = {}
    for d in got:
        if d.tool_call_id in called and d.tool_call_id not in first:
            first[d.tool_call_id] = d.received
    latencies = [first[i] - called[i] for i in called if i in first]
    counts = Counter(d.tool_call_id for d in got if d.tool_call_id in called)
    print(
        f"1. in-process hook: daemon.hooks.call_blocked() -> signed call.blocked at the receiver "
        f"({len(called)} calls, {HOOK_SPACING_S * 1000:.0f} ms apart, 1 endpoint):",
        flush=True,
    )
    p99 = percentile(latencies, 0.99)
    line("hook latency p50", ms(percentile(latencies, 0.50)))
    line(
        "hook latency p99", ms(p99), f"target <= {ms(HOOK_P99_TARGET_S)}", p99 <= HOOK_P99_TARGET_S
    )
    line("hook latency max", ms(max(latencies, default=math.nan)))
    lost = len(called) - len(first)
    duplicated = sum(c - 1 for c in counts.values())
    line(
        "received / lost / duplicated",
        f"{len(first)} / {lost} / {duplicated}",
        "target 0 lost, 0 dup",
        lost == 0 and duplicated == 0,
    )
    line("bad signatures", f"{sum(d.verified != '1' for d in got)}")
    line("call_blocked() cost to the caller p99", f"{percentile(call_cost, 0.99) * 1e6:.1f} µs")


# -- 2 and 3. the daemon process: tail latency, then the soak ---------------------------------


@dataclass
class Soak:
    seconds: float
    rows: int = 0
    denies: int = 0
    elapsed: float = 0.0
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds in, MiB)
    cpu_s: float = 0.0  # the daemon's, while the rows were written
    cpu0: float = 0.0
    cpu_total_s: float = 0.0  # the daemon's, until the backlog was delivered
    receiver_cpu_s: float = 0.0
    bench_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    first_id: int = 0
    drain_s: float = 0.0


def tail_latency(gateway: Gateway, samples: int) -> list[int]:
    """``samples`` deny rows, each committed on its own, a random 40-160 ms apart."""
    ids = []
    for _ in range(samples):
        ids.append(gateway.next_id)
        gateway.write(["deny"])
        time.sleep(gateway.rng.uniform(*TAIL_SPACING_S))
    return ids


def soak(gateway: Gateway, daemon: DaemonProcess, receiver: Receiver, seconds: float) -> Soak:
    result = Soak(seconds, first_id=gateway.next_id)
    start = time.monotonic()
    cpu0, receiver0 = daemon.cpu_s(), cpu_s(receiver.proc.pid)
    result.cpu0 = cpu0
    bench0, busy0 = sum(os.times()[:2]), machine_busy_s()
    seen = receiver.count()
    result.rss.append((0.0, daemon.rss_mib()))
    next_rss = start + RSS_EVERY_S
    next_progress = start + PROGRESS_EVERY_S
    rows_before, denies_before = gateway.rows, len(gateway.committed)
    tick = 0
    while True:
        now = time.monotonic()
        elapsed = now - start
        if elapsed >= seconds:
            break
        due = int(SOAK_ROWS_PER_S * elapsed) - (gateway.rows - rows_before)
        if due > 0:
            gateway.write(gateway.decisions(min(due, SOAK_ROWS_PER_S)))
        if now >= next_rss:
            result.rss.append((now - start, daemon.rss_mib()))
            next_rss += RSS_EVERY_S
        if now >= next_progress:
            denies = len(gateway.committed) - denies_before
            recent = receiver.deliveries(seen)
            seen += len(recent)
            latencies = [
                d.received - gateway.committed[d.tool_call_id]
                for d in recent
                if d.tool_call_id in gateway.committed
            ]
            print(
                f"    {elapsed:4.0f} s: {gateway.rows - rows_before:,} rows, {denies:,} denied; "
                f"last {PROGRESS_EVERY_S:.0f} s: {len(recent):,} received, latency "
                f"p50 {percentile(latencies, 0.5):.2f} s p99 {percentile(latencies, 0.99):.2f} s; "
                f"daemon RSS {result.rss[-1][1]:.0f} MiB, "
                f"CPU {(daemon.cpu_s() - cpu0) / elapsed:.0%}",
                flush=True,
            )
            next_progress += PROGRESS_EVERY_S
        tick += 1
        time.sleep(max(0.0, start + tick * SOAK_BATCH_EVERY_S - time.monotonic()))
    result.elapsed = time.monotonic() - start
    result.rows = gateway.rows - rows_before
    result.denies = len(gateway.committed) - denies_before
    result.cpu_s = daemon.cpu_s() - cpu0
    result.receiver_cpu_s = cpu_s(receiver.proc.pid) - receiver0
    result.bench_cpu_s = sum(os.times()[:2]) - bench0
    result.machine_busy_s = machine_busy_s() - busy0
    return result


def bench_daemon(directory: Path, receiver: Receiver, tail_samples: int, soak_s: float) -> None:
    site = Site(directory, "daemon")
    site.add_accounts(receiver, SOAK_ACCOUNTS, ENDPOINTS_PER_ACCOUNT)
    gateway = Gateway(site.engine, list(site.paths))
    daemon = DaemonProcess(site)
    try:
        _run_daemon_phases(site, receiver, gateway, daemon, tail_samples, soak_s)
    finally:
        code = daemon.stop()
        if code != 0:
            print(f"  the daemon exited {code} on SIGTERM", flush=True)
        site.engine.dispose()


def _run_daemon_phases(
    site: Site,
    receiver: Receiver,
    gateway: Gateway,
    daemon: DaemonProcess,
    tail_samples: int,
    soak_s: float,
) -> None:
    mine = f"/{site.name}/"

    def expected_until(last_id: int) -> int:
        return ENDPOINTS_PER_ACCOUNT * sum(1 for i in gateway.committed if i <= last_id)

    def received() -> list[Delivery]:
        return [d for d in receiver.deliveries() if d.path.startswith(mine)]

    base = receiver.count()
    tail_ids = tail_latency(gateway, tail_samples)
    receiver.wait_for(base + expected_until(tail_ids[-1]), 30)
    wanted = set(tail_ids)
    latencies = [
        d.received - gateway.committed[d.tool_call_id]
        for d in _first_receipts(received())
        if d.tool_call_id in wanted
    ]
    print(
        f"2. tail: deny row committed -> signed call.blocked at the receiver "
        f"(real `enforgate-webhooks run`, SQLite, tail_interval_s = 1; {tail_samples} rows, "
        f"each its own transaction, {ENDPOINTS_PER_ACCOUNT} endpoints each = "
        f"{len(latencies)} deliveries):",
        flush=True,
    )
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    line(
        "tail latency p50",
        seconds(p50),
        f"target <= {TAIL_P50_TARGET_S} s",
        p50 <= TAIL_P50_TARGET_S,
    )
    line(
        "tail latency p99",
        seconds(p99),
        f"target <= {TAIL_P99_TARGET_S:g} s",
        p99 <= TAIL_P99_TARGET_S,
    )
    line("tail latency max", seconds(max(latencies, default=math.nan)))

    print(
        f"3. soak: {SOAK_ROWS_PER_S:,} rows/s ({DENY_SHARE:.0%} deny) for {soak_s:g} s, "
        f"{SOAK_ACCOUNTS} pro accounts x {ENDPOINTS_PER_ACCOUNT} endpoints, a transaction every "
        f"{SOAK_BATCH_EVERY_S * 1000:.0f} ms:",
        flush=True,
    )
    result = soak(gateway, daemon, receiver, soak_s)
    expected = expected_until(gateway.next_id)
    result.drain_s = receiver.wait_for(base + expected)
    result.cpu_total_s = daemon.cpu_s() - result.cpu0
    time.sleep(DUPLICATE_GRACE_S)
    result.rss.append((result.elapsed + result.drain_s + DUPLICATE_GRACE_S, daemon.rss_mib()))
    _report_soak(site, gateway, daemon, received(), result)


def _first_receipts(got: Sequence[Delivery]) -> Iterator[Delivery]:
    seen: set[tuple[int | None, str]] = set()
    for d in got:
        if d.event == "call.blocked" and (d.tool_call_id, d.path) not in seen:
            seen.add((d.tool_call_id, d.path))
            yield d


def _report_soak(
    site: Site, gateway: Gateway, daemon: DaemonProcess, got: Sequence[Delivery], result: Soak
) -> None:
    rate = result.rows / result.elapsed if result.elapsed else math.nan
    line(
        "rows written per second",
        f"{rate:,.0f}/s",
        f"target {SOAK_ROWS_PER_S:,}/s",
        rate >= SOAK_ROWS_PER_S * 0.98,
    )
    line("rows / denied rows written", f"{result.rows:,} / {result.denies:,}")

    # Every deny row of the whole run (tail phase included) x its account's endpoints, once.
    expected = {
        (row_id, path)
        for row_id in gateway.committed
        for path in site.paths[gateway.account_of[row_id]]
    }
    counts = Counter((d.tool_call_id, d.path) for d in got if d.event == "call.blocked")
    lost = len(expected - counts.keys())
    duplicated = sum(c - 1 for c in counts.values())
    unexpected = sum(c for k, c in counts.items() if k not in expected)
    line("deliveries expected (denies x 3 endpoints)", f"{len(expected):,}")
    line("deliveries received", f"{sum(counts.values()):,}")
    line("lost", f"{lost:,}", "target 0", lost == 0)
    line("duplicated", f"{duplicated:,}", "target 0", duplicated == 0)
    line("unexpected (not a deny of that account)", f"{unexpected:,}", "target 0", unexpected == 0)
    bad = sum(d.verified != "1" for d in got)
    line("signatures that did not verify", f"{bad:,}", "target 0", bad == 0)
    line("backlog drained after the writes stopped in", seconds(result.drain_s))

    soak_ids = {i for i in gateway.committed if i >= result.first_id}
    latencies = [
        d.received - gateway.committed[d.tool_call_id]
        for d in _first_receipts(got)
        if d.tool_call_id in soak_ids
    ]
    line(
        "latency under load p50",
        seconds(percentile(latencies, 0.50)),
        f"idle target <= {TAIL_P50_TARGET_S} s",
    )
    line(
        "latency under load p99",
        seconds(percentile(latencies, 0.99)),
        f"idle target <= {TAIL_P99_TARGET_S:g} s",
    )
    line("latency under load max", seconds(max(latencies, default=math.nan)))

    _report_stages(site, gateway, got, soak_ids)
    per_delivery = result.cpu_total_s / (ENDPOINTS_PER_ACCOUNT * len(soak_ids) or 1)
    line("daemon CPU per webhook (tail included)", f"{per_delivery * 1000:.2f} ms")
    share = {
        "daemon": result.cpu_s,
        "receiver": result.receiver_cpu_s,
        "bench (the gateway's writes)": result.bench_cpu_s,
    }
    share["other processes on the machine"] = result.machine_busy_s - sum(share.values())
    line(
        "CPU during the soak, all processes",
        f"{result.machine_busy_s / result.elapsed:.0%}",
        f"of {os.cpu_count()} cores = {(os.cpu_count() or 1) * 100}%",
    )
    for who, used in share.items():
        line(f"  {who}", f"{max(0.0, used) / result.elapsed:.0%}")
    samples = result.rss
    warmup = min(RSS_WARMUP_S, result.seconds / 5)
    after = [s for s in samples if s[0] >= warmup] or samples[-1:]
    first, warm = samples[0][1], after[0][1]
    peak, last = max(s[1] for s in samples), samples[-1][1]
    line("daemon RSS first sample", f"{first:.1f} MiB")
    line(f"daemon RSS after warm-up ({after[0][0]:.0f} s)", f"{warm:.1f} MiB")
    line("daemon RSS max", f"{peak:.1f} MiB")
    line(
        "daemon RSS last",
        f"{last:.1f} MiB",
        f"target flat: <= {RSS_FLAT_FACTOR:g} x after warm-up",
        last <= warm * RSS_FLAT_FACTOR,
    )
    line("daemon RSS slope after warm-up", f"{_slope(after) * 60:+.2f} MiB/min")
    print("  RSS samples (s: MiB): " + ", ".join(f"{t:.0f}: {m:.1f}" for t, m in samples))

    with site.engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(outbox)
        pending = conn.execute(count.where(outbox.c.done_at.is_(None))).scalar()
        outbox_rows = conn.execute(count).scalar()
    failed = site.scalar("SELECT count(*) FROM webhook_deliveries WHERE NOT ok")
    logged = site.scalar("SELECT count(*) FROM webhook_deliveries")
    line("outbox rows / still pending", f"{outbox_rows:,} / {pending:,}")
    line("delivery log rows / failed", f"{logged:,} / {failed:,}")
    notes = [m for m in re.findall(r"^\S+ \S+ (WARNING|ERROR) (.*)$", daemon.log(), re.M)]
    line("daemon log warnings + errors", f"{len(notes):,}")
    for level, message in list(dict.fromkeys(notes))[:5]:
        print(f"    {level}: {message[:160]}")


def _report_stages(
    site: Site, gateway: Gateway, got: Sequence[Delivery], soak_ids: set[int]
) -> None:
    """Split the soak's latency at the outbox: its row's ``created_at`` is the tail poll's time."""
    with site.engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.key, outbox.c.created_at).where(
                outbox.c.event_type == "call.blocked"
            )
        ).all()
    polled = {int(key.rsplit(":", 1)[1]): at.timestamp() for key, at in rows}
    read = [polled[i] - gateway.committed[i] for i in soak_ids if i in polled]
    sent = [
        d.received - polled[d.tool_call_id]
        for d in _first_receipts(got)
        if d.tool_call_id in soak_ids and d.tool_call_id in polled
    ]
    for name, values in (("commit -> tail poll", read), ("tail poll -> receiver", sent)):
        line(
            f"  {name} p50 / p99",
            f"{percentile(values, 0.5):.2f} / {percentile(values, 0.99):.2f} s",
        )


def _slope(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares MiB per second; 0 with fewer than two samples."""
    if len(samples) < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / len(samples)
    mean_m = sum(m for _, m in samples) / len(samples)
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return cov / var if var else 0.0


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.daemon_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--soak-seconds", type=float, default=300.0, help="default 300")
    parser.add_argument("--tail-samples", type=int, default=300, help="deny rows, default 300")
    parser.add_argument("--hook-calls", type=int, default=200, help="default 200")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 20 s soak, 60 tail rows, 100 hooks"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases and the daemon's log"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.soak_seconds, args.tail_samples, args.hook_calls = 20.0, 60, 100
    return args


def main(argv: Sequence[str] | None = None) -> None:
    # `python -m bench` calls main() with its own command line: then every option's default.
    args = parse_args([] if argv is None else argv)
    for name in [k for k in os.environ if k.startswith("ENFORGATE_")]:
        del os.environ[name]  # the bench's config files say everything
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    print(
        f"machine: {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
        f"soak {args.soak_seconds:g} s",
        flush=True,
    )
    receiver = Receiver()
    try:
        with tempfile.TemporaryDirectory(prefix="daemon_bench_") as tmp:
            directory = Path(tmp)
            if args.keep:
                directory = Path(tempfile.mkdtemp(prefix="daemon_bench_"))
                print(f"keeping the databases and the daemon's log in {directory}")
            bench_hook(directory, receiver, args.hook_calls)
            # The in-process daemon's loop handled SIGTERM and reset it to the default on close.
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
            bench_daemon(directory, receiver, args.tail_samples, args.soak_seconds)
    finally:
        receiver.close()
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # runs the clean-up in main()'s finally blocks


if __name__ == "__main__":
    main(sys.argv[1:])
