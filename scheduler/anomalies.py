"""Recording anomalies under their fingerprint, and deciding which of them are sent.

An anomaly is stored before it is published, in the transaction that records the detector's
progress, so a restart, a re-run or a second pass over the same window never sends it again.
What became of each one is kept for the security team's ``anomalies`` view:

- ``sent``: published as ``anomaly.detected``;
- ``suppressed_cooldown``: one of the same kind (account, type, server/tool) went out less than
  ``cooldown`` ago, and this one is not more severe;
- ``skipped_too_old``: found while catching up on a window older than ``max_age``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from delivery import payloads

from .outbox import OutboxEvent
from .state import anomalies

_SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}


class Outcome(enum.StrEnum):
    """What became of a recorded anomaly."""

    SENT = "sent"
    SUPPRESSED_COOLDOWN = "suppressed_cooldown"
    SKIPPED_TOO_OLD = "skipped_too_old"


class AnomalyLike(Protocol):
    """What the recorder reads of a ``detectors.Anomaly``."""

    @property
    def anomaly_id(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def server(self) -> str | None: ...
    @property
    def tool(self) -> str | None: ...
    @property
    def severity(self) -> str: ...
    @property
    def window_end(self) -> datetime: ...


@dataclass(frozen=True)
class Recorded:
    """One anomaly as stored, with its contract data and outcome."""

    data: Mapping[str, Any]
    outcome: Outcome


def record(
    conn: Connection,
    found: Sequence[tuple[AnomalyLike, Mapping[str, Any]]],
    now: datetime,
    *,
    cooldown: timedelta,
    max_age: timedelta,
) -> tuple[list[Recorded], list[OutboxEvent]]:
    """Store new anomalies (those already known by fingerprint are ignored) in the caller's
    transaction.

    Args:
        found: each anomaly with its contract data (``anomaly.detected``'s ``data``).

    Returns:
        What was recorded, and the events to send for those whose outcome is ``sent``.
    """
    recorded: list[Recorded] = []
    events: list[OutboxEvent] = []
    for anomaly, data in found:
        known = conn.execute(
            sa.select(anomalies.c.anomaly_id).where(anomalies.c.fingerprint == anomaly.fingerprint)
        ).first()
        if known is not None:
            continue
        outcome = _decide(conn, anomaly, now, cooldown=cooldown, max_age=max_age)
        conn.execute(
            sa.insert(anomalies).values(
                anomaly_id=anomaly.anomaly_id,
                fingerprint=anomaly.fingerprint,
                account_id=anomaly.account_id,
                type=anomaly.type,
                server=anomaly.server,
                tool=anomaly.tool,
                severity=anomaly.severity,
                window_end=anomaly.window_end,
                detected_at=now,
                outcome=outcome.value,
                data=dict(data),
            )
        )
        recorded.append(Recorded(data, outcome))
        if outcome is Outcome.SENT:
            events.append(
                OutboxEvent.of(
                    payloads.ANOMALY_DETECTED, anomaly.anomaly_id, anomaly.account_id, data
                )
            )
    return recorded, events


def _decide(
    conn: Connection,
    anomaly: AnomalyLike,
    now: datetime,
    *,
    cooldown: timedelta,
    max_age: timedelta,
) -> Outcome:
    if anomaly.window_end < now - max_age:
        return Outcome.SKIPPED_TOO_OLD
    recent = conn.execute(
        sa.select(anomalies.c.severity).where(
            anomalies.c.account_id == anomaly.account_id,
            anomalies.c.type == anomaly.type,
            anomalies.c.server.is_not_distinct_from(anomaly.server),
            anomalies.c.tool.is_not_distinct_from(anomaly.tool),
            anomalies.c.outcome == Outcome.SENT.value,
            anomalies.c.detected_at >= now - cooldown,
        )
    ).scalars()
    worst_recent = max((_SEVERITY_RANK.get(s, 0) for s in recent), default=None)
    if worst_recent is not None and _SEVERITY_RANK.get(anomaly.severity, 0) <= worst_recent:
        return Outcome.SUPPRESSED_COOLDOWN
    return Outcome.SENT


def list_recorded(
    engine: Engine,
    *,
    since: datetime | None = None,
    account_id: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Recorded anomalies, newest first, each as its contract data plus ``outcome``."""
    query = sa.select(anomalies.c.data, anomalies.c.outcome).order_by(
        anomalies.c.detected_at.desc(), anomalies.c.anomaly_id
    )
    if since is not None:
        query = query.where(anomalies.c.detected_at >= since)
    if account_id is not None:
        query = query.where(anomalies.c.account_id == account_id)
    with engine.connect() as conn:
        rows = conn.execute(query.limit(limit)).all()
    return [{**row.data, "outcome": row.outcome} for row in rows]
