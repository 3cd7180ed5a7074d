"""Writing rows as the gateway would, for tests and benchmarks."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from scheduler.schema import accounts, activity_log, approvals

_counter = itertools.count(1)


def add_account(engine: Engine, account_id: str, plan: str = "pro") -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(accounts).values(
                id=account_id, name=account_id.title(), plan=plan, created_at=datetime.now(UTC)
            )
        )


def activity_row(
    account_id: str,
    *,
    decision: str = "allow",
    at: datetime | None = None,
    server: str = "github",
    tool: str = "create_issue",
    row_id: int | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    n = next(_counter)
    row: dict[str, Any] = {
        "account_id": account_id,
        "created_at": at or datetime.now(UTC),
        "api_key_id": "key_1",
        "server": server,
        "tool": tool,
        "decision": decision,
        "reason": reason or (f"policy blocked {tool}" if decision == "deny" else None),
        "policy_id": "pol_1" if decision != "allow" else None,
        "rule_id": "rule_7" if decision != "allow" else None,
        "args_hash": hashlib.sha256(f"args-{n}".encode()).hexdigest(),
        "latency_ms": 3,
    }
    if row_id is not None:
        row["id"] = row_id
    return row


def log_calls(engine: Engine, rows: list[dict[str, Any]]) -> list[int]:
    """Insert activity rows in one transaction; returns their ids."""
    ids = []
    with engine.begin() as conn:
        for row in rows:
            ids.append(conn.execute(sa.insert(activity_log).values(row)).inserted_primary_key[0])
    return ids


def create_approval(
    engine: Engine,
    approval_id: str,
    account_id: str,
    tool_call_id: int,
    *,
    at: datetime | None = None,
) -> None:
    at = at or datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(approvals).values(
                id=approval_id,
                account_id=account_id,
                tool_call_id=tool_call_id,
                server="github",
                tool="merge_pr",
                args_hash="ab" * 32,
                reason="needs a human",
                status="pending",
                created_at=at,
                expires_at=at + timedelta(minutes=15),
            )
        )


def resolve_approval(
    engine: Engine,
    approval_id: str,
    status: str,
    method: str | None,
    *,
    at: datetime | None = None,
    by: str | None = "alice@example.com",
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(approvals)
            .where(approvals.c.id == approval_id)
            .values(
                status=status, method=method, resolved_by=by, resolved_at=at or datetime.now(UTC)
            )
        )
