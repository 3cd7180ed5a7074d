"""Speed benchmark: a regular detector run and the ``detect`` backtest on a 10M-row log.

    .venv/bin/python -m bench.detect_speed [--rows 10000000] [--rebuild]

SQLite only: PostgreSQL is covered for correctness by the tests, not timed here (a note is
printed). The logs are built with one recursive-CTE ``INSERT ... SELECT`` and cached under /tmp,
keyed by a version and the row count, so reruns are quick.

Targets: a regular run (refresh + judging the latest window of every detector) with 10,000 new
rows <= 250 ms; its time on a 10M-row history within 1.5x of its time on 100k rows; ``detect``
over 30 days of the 10M-row log <= 60 s (peak RSS printed).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from sqlalchemy import Engine

from detectors import DetectorsConfig
from scheduler.db import make_engine, upgrade
from scheduler.detection import Detection

VERSION: Final = 1
DAYS: Final = 30
ACCOUNTS: Final = 20
END: Final = datetime(2026, 6, 1, tzinfo=UTC)
NEW_ROWS: Final = 10_000
RUNS: Final = 5
TARGET_RUN_MS: Final = 250
TARGET_RATIO: Final = 1.5
TARGET_DETECT_S: Final = 60

_FILL = """
INSERT INTO activity_log (account_id, created_at, server, tool, decision, args_hash)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :count - 1)
SELECT
  'acct_' || ((i * 7919) % {accounts} * (i % 3) % {accounts}),
  strftime('%Y-%m-%d %H:%M:%f', :start + i * :step, 'unixepoch') || '000',
  'srv' || (i % 5),
  'tool' || ((i / 5) % 9),
  CASE WHEN i % 31 = 0 THEN 'deny' WHEN i % 97 = 0 THEN 'require_approval' ELSE 'allow' END,
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
FROM n
"""


def build(rows: int, rebuild: bool) -> Path:
    """A cached SQLite log of ``rows`` rows spread evenly over the 30 days before END."""
    cache = Path(tempfile.gettempdir()) / "enforgate-bench"
    cache.mkdir(exist_ok=True)
    path = cache / f"speed-v{VERSION}-{rows}.db"
    if path.exists() and not rebuild:
        return path
    partial = path.with_suffix(".partial")
    for p in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        p.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{partial}")
    upgrade(engine)
    started = time.monotonic()
    start = (END - timedelta(days=DAYS)).timestamp()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            _FILL.replace("{accounts}", str(ACCOUNTS))
            .replace(":count", str(rows))
            .replace(":start", str(start))
            .replace(":step", str(DAYS * 86_400 / rows))
        )
    engine.dispose()
    shutil.move(partial, path)
    print(f"built {rows:,} rows in {time.monotonic() - started:.0f}s: {path}")
    return path


def _append(engine: Engine, at: datetime, count: int) -> None:
    start = at.timestamp()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            _FILL.replace("{accounts}", str(ACCOUNTS))
            .replace(":count", str(count))
            .replace(":start", str(start))
            .replace(":step", str(60 / count))
        )


def regular_runs(path: Path) -> tuple[float, float]:
    """(first build seconds, median regular-run milliseconds) on a copy-free database.

    The appended rows are deleted again afterwards, so the cached log stays as built.
    """
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        mark = int(conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM activity_log").scalar())
        conn.exec_driver_sql("DELETE FROM detection_state")
        conn.commit()
    detection = Detection(engine, DetectorsConfig())
    started = time.monotonic()
    detection.refresh(END)
    build_s = time.monotonic() - started
    times = []
    try:
        for k in range(RUNS + 1):
            at = END + timedelta(minutes=k)
            _append(engine, at, NEW_ROWS)
            now = at + timedelta(minutes=1)
            started = time.monotonic()
            stats = detection.refresh(now)
            for name in detection.detector_names():
                # The latest closed window, settle delay ignored: always judge something.
                [(ws, we)] = detection.due_windows(name, None, now + timedelta(hours=1))
                detection.judge(name, ws - timedelta(hours=1), we - timedelta(hours=1))
            elapsed = (time.monotonic() - started) * 1000
            if k:  # the first run also reads the margin before END; warm-up
                times.append(elapsed)
            assert stats.rows >= NEW_ROWS, stats
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM activity_log WHERE id > {mark}")  # noqa: S608
            conn.exec_driver_sql("DELETE FROM detection_known_tools")
            conn.exec_driver_sql("DELETE FROM detection_state")
        engine.dispose()
    return build_s, statistics.median(times)


def backtest_seconds(path: Path) -> tuple[float, float]:
    """``detect`` over the 30 days, through the real command line: (seconds, peak RSS MB)."""
    exe = Path(sys.executable).parent / "enforgate-webhooks"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENFORGATE_")}
    env["ENFORGATE_DATABASE__URL"] = f"sqlite:///{path}"
    frm, to = (END - timedelta(days=DAYS)).date().isoformat(), END.date().isoformat()
    started = time.monotonic()
    subprocess.run(
        [str(exe), "detect", "--from", frm, "--to", to, "--json"],
        env=env, check=True, capture_output=True, cwd=tempfile.gettempdir(),
    )  # fmt: skip
    seconds = time.monotonic() - started
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, rss_mb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    print("PostgreSQL: not timed here (the tests run every storage path on it); SQLite only.")
    small, big = build(args.small, args.rebuild), build(args.rows, args.rebuild)
    small_build, small_ms = regular_runs(small)
    big_build, big_ms = regular_runs(big)
    ratio = big_ms / small_ms
    detect_s, rss = backtest_seconds(big)
    ok_run = big_ms <= TARGET_RUN_MS
    ok_ratio = ratio <= TARGET_RATIO
    ok_detect = detect_s <= TARGET_DETECT_S
    print(
        f"\nfirst rollup build (once per database): {args.small:,} rows {small_build:.1f}s, "
        f"{args.rows:,} rows {big_build:.1f}s"
    )
    print(f"regular run, {NEW_ROWS:,} new rows, {args.small:,} rows of history: {small_ms:.0f} ms")
    print(
        f"regular run, {NEW_ROWS:,} new rows, {args.rows:,} rows of history: {big_ms:.0f} ms "
        f"(target <= {TARGET_RUN_MS} ms) {'ok' if ok_run else 'MISSED'}"
    )
    print(f"ratio: {ratio:.2f} (target <= {TARGET_RATIO}) {'ok' if ok_ratio else 'MISSED'}")
    print(
        f"detect over {DAYS} days of {args.rows:,} rows: {detect_s:.1f}s "
        f"(target <= {TARGET_DETECT_S}s) {'ok' if ok_detect else 'MISSED'}; "
        f"peak RSS {rss:.0f} MB"
    )
    return 0 if ok_run and ok_ratio and ok_detect else 1


if __name__ == "__main__":
    sys.exit(main())
