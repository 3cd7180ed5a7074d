"""Writing activity rows the way the gateway does, for the database-side tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from scheduler.schema import accounts, activity_log

T0 = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday


def call(
    account_id: str,
    at: datetime,
    *,
    server: str = "github",
    tool: str = "list_issues",
    decision: str = "allow",
) -> dict[str, object]:
    return {
        "account_id": account_id,
        "created_at": at,
        "server": server,
        "tool": tool,
        "decision": decision,
        "args_hash": hashlib.sha256(f"{account_id}{at}".encode()).hexdigest(),
    }


def steady(
    account_id: str, start: datetime, hours: int, per_hour: int, **kwargs: str
) -> list[dict[str, object]]:
    """``per_hour`` calls spread evenly over each hour."""
    step = timedelta(seconds=3600 / per_hour)
    return [
        call(account_id, start + timedelta(hours=h) + i * step, **kwargs)
        for h in range(hours)
        for i in range(per_hour)
    ]


def insert(engine: Engine, rows: Iterable[dict[str, object]]) -> None:
    rows = list(rows)
    with engine.begin() as conn:
        ids = sorted({str(r["account_id"]) for r in rows})
        existing = {r[0] for r in conn.execute(accounts.select().with_only_columns(accounts.c.id))}
        new = [
            {"id": a, "name": a, "plan": "pro", "created_at": T0 - timedelta(days=30)}
            for a in ids
            if a not in existing
        ]
        if new:
            conn.execute(accounts.insert(), new)
        if rows:
            conn.execute(activity_log.insert(), rows)
