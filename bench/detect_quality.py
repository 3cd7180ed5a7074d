"""Quality benchmark: precision and recall of ``detect`` on labelled synthetic activity.

    .venv/bin/python -m bench.detect_quality [--seed N] [--rebuild]

Builds (or reuses, under /tmp) a SQLite database of 44 days from ``bench.synthetic``: 14 days of
history, then 30 judged days with labelled incidents and decoys. Runs the real command line,
``enforgate-webhooks detect --json`` with the default config, over the 30 days, and scores each
detector. Targets: precision and recall >= 0.9 per detector, <= 0.02 false alarms per
account-day. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from bench.synthetic import Incident, generate, incident_summary
from scheduler.db import make_engine, upgrade

# Bump when the generator changes, so a stale cached database is not reused.
VERSION: Final = 3
START: Final = datetime(2026, 4, 27, tzinfo=UTC)  # a Monday
HISTORY_DAYS: Final = 14
JUDGED_DAYS: Final = 30
TARGET_PRECISION: Final = 0.9
TARGET_RECALL: Final = 0.9
TARGET_FALSE_PER_ACCOUNT_DAY: Final = 0.02
TYPES: Final = ("call_spike", "block_rate_jump", "new_tool")


def build(seed: int, rebuild: bool) -> tuple[Path, list[Incident], int]:
    """The cached database, the incidents injected into it and how many accounts it has."""
    cache = Path(tempfile.gettempdir()) / "enforgate-bench"
    cache.mkdir(exist_ok=True)
    path = cache / f"quality-v{VERSION}-seed{seed}.db"
    from bench.synthetic import default_incidents, default_profiles

    incidents = default_incidents(START + timedelta(days=HISTORY_DAYS) - timedelta(days=7))
    if rebuild or not path.exists():
        partial = path.with_suffix(".partial")
        for p in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
            p.unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{partial}")
        upgrade(engine)
        started = time.monotonic()
        out = generate(engine, START, HISTORY_DAYS + JUDGED_DAYS, seed=seed, incidents=incidents)
        engine.dispose()
        shutil.move(partial, path)
        print(f"generated {out.rows:,} activity rows in {time.monotonic() - started:.0f}s")
    return path, incidents, len(default_profiles())


def _matches(anomaly: dict[str, Any], incident: Incident) -> bool:
    if anomaly["accountId"] != incident.account_id:
        return False
    start = datetime.fromisoformat(anomaly["windowStart"])
    end = datetime.fromisoformat(anomaly["windowEnd"])
    if not (start < incident.end and incident.start < end):
        return False
    if anomaly["type"] == "new_tool":
        return incident.tool == (anomaly["server"], anomaly["tool"])
    return True


def score(anomalies: list[dict[str, Any]], incidents: list[Incident], account_days: int) -> bool:
    """Print precision, recall and false alarms against the targets; True if all are met."""
    ok = True
    false_total = 0
    print(
        f"\n{'detector':16} {'found':>5} {'true':>5} {'false':>5} {'precision':>9} "
        f"{'recall':>7}   targets: precision >= {TARGET_PRECISION}, recall >= {TARGET_RECALL}"
    )
    for kind in TYPES:
        found = [a for a in anomalies if a["type"] == kind]
        labelled = [i for i in incidents if i.kind == kind]
        true = [a for a in found if any(_matches(a, i) for i in labelled)]
        hit = [i for i in labelled if any(_matches(a, i) for a in found)]
        precision = len(true) / len(found) if found else 1.0
        recall = len(hit) / len(labelled) if labelled else 1.0
        false_total += len(found) - len(true)
        met = precision >= TARGET_PRECISION and recall >= TARGET_RECALL
        ok &= met
        print(
            f"{kind:16} {len(found):5} {len(true):5} {len(found) - len(true):5} "
            f"{precision:9.2f} {recall:7.2f}   {'ok' if met else 'MISSED'}"
        )
        for i in labelled:
            if i not in hit:
                print(f"    missed: {i.account_id} {i.start:%Y-%m-%d %H:%M} {i.note}")
    per_day = false_total / account_days
    ok &= per_day <= TARGET_FALSE_PER_ACCOUNT_DAY
    print(
        f"\nfalse alarms: {false_total} in {account_days} account-days = {per_day:.4f} "
        f"per account-day (target <= {TARGET_FALSE_PER_ACCOUNT_DAY})"
    )
    decoys = [i for i in incidents if i.kind == "decoy"]
    fired = [
        (i, a)
        for i in decoys
        for a in anomalies
        if _matches(a, i)
        or (a["accountId"] == i.account_id and a["type"] != "new_tool" and _matches(a, i))
    ]
    print(f"decoys: {len(decoys)}, of which fired: {len({id(i) for i, _ in fired})}")
    for i, a in fired:
        print(f"    decoy fired: {i.note}: {a['summary']}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached database")
    args = parser.parse_args()
    path, incidents, accounts = build(args.seed, args.rebuild)
    print("incidents and decoys:\n" + incident_summary(incidents))
    frm = START + timedelta(days=HISTORY_DAYS)
    to = frm + timedelta(days=JUDGED_DAYS)
    exe = Path(sys.executable).parent / "enforgate-webhooks"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENFORGATE_")}
    env["ENFORGATE_DATABASE__URL"] = f"sqlite:///{path}"
    started = time.monotonic()
    run = subprocess.run(
        [
            str(exe),
            "detect",
            "--from",
            frm.date().isoformat(),
            "--to",
            to.date().isoformat(),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    if run.returncode != 0:
        print(run.stderr, file=sys.stderr)
        return 1
    print(f"\ndetect over {JUDGED_DAYS} days took {time.monotonic() - started:.1f}s")
    anomalies = json.loads(run.stdout)["anomalies"]
    return 0 if score(anomalies, incidents, accounts * JUDGED_DAYS) else 1


if __name__ == "__main__":
    sys.exit(main())
