"""The tail: turns new ``deny`` rows and approval changes into events, exactly once.

Writers commit concurrently, so a row with a smaller id (or an earlier time) can become visible
after a larger one. The two streams handle that differently, each for its volume:

- ``activity_log`` (high volume, integer ids): the tail keeps the highest id it has read and the
  ids below it that were not visible yet (*gaps*). Every poll reads the rows above the position
  and the gaps; a late commit fills its gap, a rolled-back insert never does and ages out after
  ``gap_timeout``.
- ``approvals`` (human volume, text ids, updated in place): every poll re-reads the rows created
  or resolved since the last poll minus ``lookback``; the outbox's unique keys drop the ones
  already sent.

Each poll is one transaction: the events go into the outbox and the position moves together,
so a crash between the two is impossible and a restart resumes exactly where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast, get_args

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, Row

from delivery import payloads

from .exceptions import MalformedRowError
from .outbox import OutboxEvent, insert_new
from .schema import activity_log, approvals
from .state import tail_gaps, tail_state

log = logging.getLogger(__name__)

ACTIVITY = "activity_log"
APPROVALS = "approvals"
_DECISIONS = frozenset({"allow", "deny", "require_approval"})
Method = Literal["dashboard", "live_feed", "email", "api", "timeout"]
_METHODS: frozenset[str] = frozenset(get_args(Method))
_RESOLVED: dict[str, Literal["approved", "denied"]] = {
    "approved": "approved",
    "denied": "denied",
    "expired": "denied",  # the contract: an approval that timed out is denied
}


@dataclass
class PollResult:
    """What one poll did."""

    events: list[tuple[int, OutboxEvent]] = field(default_factory=list)
    malformed: int = 0
    gaps_open: int = 0
    gaps_expired: int = 0
    lag_s: float | None = None  # how old the newest row read was when it was read


class Tail:
    """Reads the activity log and approvals; one instance per daemon.

    Args:
        engine: the database (owned by the caller).
        start: where a first start begins: ``now`` (no flood of history) or ``beginning``.
        lookback: how late an approval may commit and still be seen.
        gap_timeout: how long a missing activity id is waited for.
        batch: at most this many activity rows per poll (the rest come next poll).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        start: Literal["now", "beginning"] = "now",
        lookback: timedelta = timedelta(minutes=5),
        gap_timeout: timedelta = timedelta(minutes=5),
        max_gaps: int = 10_000,
        batch: int = 5_000,
    ) -> None:
        self._engine = engine
        self._start = start
        self._lookback = lookback
        self._gap_timeout = gap_timeout
        self._max_gaps = max_gaps
        self._batch = batch

    def poll(self, now: datetime | None = None) -> PollResult:
        """Read both streams once and record their events in the outbox (blocking)."""
        now = now or datetime.now(UTC)
        result = PollResult()
        with self._engine.begin() as conn:
            events = self._poll_activity(conn, now, result)
            events += self._poll_approvals(conn, now, result)
            result.events = insert_new(conn, events, now)
        return result

    def reread_from(self) -> datetime | None:
        """The oldest time the next approvals poll re-reads from: outbox keys of events since
        then must be kept, or a re-read would send them again. None before the first poll."""
        with self._engine.connect() as conn:
            state = conn.execute(
                sa.select(tail_state.c.watermark).where(tail_state.c.stream == APPROVALS)
            ).first()
        if state is None or state.watermark is None:
            return None
        return state.watermark - self._lookback  # type: ignore[no-any-return]

    # -- activity_log -------------------------------------------------------------------------

    def _poll_activity(
        self, conn: Connection, now: datetime, result: PollResult
    ) -> list[OutboxEvent]:
        position = _load_position(conn, ACTIVITY)
        if position is None:
            first = 0
            if self._start == "now":
                first = conn.execute(sa.select(sa.func.max(activity_log.c.id))).scalar() or 0
            _save_state(conn, ACTIVITY, now, position=first)
            log.info("tail: activity_log starts after id %d", first)
            return []

        gaps = set(conn.scalars(sa.select(tail_gaps.c.activity_id)))
        rows = list(
            conn.execute(
                _activity_query()
                .where(activity_log.c.id > position)
                .order_by(activity_log.c.id)
                .limit(self._batch)
            )
        )
        filled: list[Row[Any]] = []
        for chunk in _chunks(sorted(gaps), 500):
            filled += conn.execute(_activity_query().where(activity_log.c.id.in_(chunk))).all()

        if filled:
            conn.execute(
                sa.delete(tail_gaps).where(tail_gaps.c.activity_id.in_([r.id for r in filled]))
            )
        if rows:
            seen = {r.id for r in rows}
            new_gaps = [i for i in range(position + 1, rows[-1].id) if i not in seen]
            if new_gaps:
                new_gaps = new_gaps[-self._max_gaps :]
                conn.execute(
                    sa.insert(tail_gaps), [{"activity_id": i, "noticed_at": now} for i in new_gaps]
                )
            _save_state(conn, ACTIVITY, now, position=rows[-1].id)
        result.gaps_expired, result.gaps_open = self._expire_gaps(conn, now)

        events = []
        for row in sorted(filled + rows, key=lambda r: r.id):
            try:
                event = _call_blocked(row)
            except MalformedRowError as exc:
                result.malformed += 1
                log.warning("tail: skipped activity_log row %s: %s", row.id, exc)
                continue
            if event is not None:
                events.append(event)
        if rows:
            newest = _parse_time(rows[-1].created_at)
            if newest is not None:
                result.lag_s = max(0.0, (now - newest).total_seconds())
        return events

    def _expire_gaps(self, conn: Connection, now: datetime) -> tuple[int, int]:
        """Drop gaps waited for long enough; returns (expired, still open)."""
        expired = conn.execute(
            sa.delete(tail_gaps).where(tail_gaps.c.noticed_at < now - self._gap_timeout)
        ).rowcount
        if expired:
            log.info("tail: gave up waiting for %d activity_log ids (rolled back?)", expired)
        # Bound the table even if a writer burns through huge id ranges.
        count = conn.execute(sa.select(sa.func.count()).select_from(tail_gaps)).scalar() or 0
        if count > self._max_gaps:
            oldest = (
                sa.select(tail_gaps.c.activity_id)
                .order_by(tail_gaps.c.activity_id)
                .limit(count - self._max_gaps)
            )
            dropped = conn.execute(
                sa.delete(tail_gaps).where(tail_gaps.c.activity_id.in_(oldest.scalar_subquery()))
            ).rowcount
            expired += dropped
            count -= dropped
        return int(expired or 0), int(count)

    # -- approvals ----------------------------------------------------------------------------

    def _poll_approvals(
        self, conn: Connection, now: datetime, result: PollResult
    ) -> list[OutboxEvent]:
        state = conn.execute(sa.select(tail_state).where(tail_state.c.stream == APPROVALS)).first()
        if state is None:
            floor = now if self._start == "now" else datetime(1970, 1, 1, tzinfo=UTC)
            # `position` keeps the floor as epoch ms: nothing before it is ever sent.
            _save_state(conn, APPROVALS, now, position=_ms(floor), watermark=now)
            return []
        floor = datetime.fromtimestamp((state.position or 0) / 1000, UTC)
        since = max(floor, state.watermark - self._lookback)
        created = conn.execute(
            sa.select(approvals)
            .where(approvals.c.created_at >= since)
            .order_by(approvals.c.created_at)
        ).all()
        resolved = conn.execute(
            sa.select(approvals).where(
                sa.or_(
                    approvals.c.resolved_at >= since,
                    sa.and_(
                        approvals.c.status == "expired",
                        approvals.c.resolved_at.is_(None),
                        approvals.c.expires_at >= since,
                    ),
                )
            )
        ).all()
        events: list[OutboxEvent] = []
        for row in created:
            try:
                events.append(_approval_created(row))
            except (MalformedRowError, AttributeError, TypeError, ValueError) as exc:
                result.malformed += 1
                log.warning("tail: skipped approvals row %s: %s", row.id, exc)
        resolved_events = []
        for row in resolved:
            try:
                event = _approval_resolved(row)
            except MalformedRowError as exc:
                result.malformed += 1
                log.warning("tail: skipped approvals row %s: %s", row.id, exc)
                continue
            if event is not None:
                resolved_events.append((event.data["occurredAt"], event))
        # Created before resolved, so a receiver never hears of a decision on an unknown approval.
        events += [e for _, e in sorted(resolved_events, key=lambda p: p[0])]
        _save_state(conn, APPROVALS, now, position=state.position, watermark=now)
        return events


def _activity_query() -> sa.Select[Any]:
    c = activity_log.c
    # created_at is read as stored: a malformed value must skip one row, not fail the poll.
    return sa.select(
        c.id,
        c.account_id,
        sa.type_coerce(c.created_at, sa.String).label("created_at"),
        c.server,
        c.tool,
        c.decision,
        c.reason,
        c.policy_id,
        c.rule_id,
        c.args_hash,
    )


def _call_blocked(row: Row[Any]) -> OutboxEvent | None:
    if row.decision not in _DECISIONS:
        raise MalformedRowError(f"decision {row.decision!r} is not one of {sorted(_DECISIONS)}")
    if row.decision != "deny":
        return None
    occurred = _parse_time(row.created_at)
    if occurred is None or not (row.account_id and row.server and row.tool and row.args_hash):
        raise MalformedRowError("missing account_id, created_at, server, tool or args_hash")
    data = payloads.call_blocked(
        tool_call_id=int(row.id),
        account_id=row.account_id,
        server=row.server,
        tool=row.tool,
        reason=row.reason,
        policy_id=row.policy_id,
        rule_id=row.rule_id,
        args_hash=row.args_hash,
        occurred_at=occurred,
    )
    return OutboxEvent.of(payloads.CALL_BLOCKED, row.id, row.account_id, data)


def _approval_created(row: Row[Any]) -> OutboxEvent:
    data = payloads.approval_created(
        approval_id=row.id,
        tool_call_id=int(row.tool_call_id),
        account_id=row.account_id,
        server=row.server,
        tool=row.tool,
        args_hash=row.args_hash,
        reason=row.reason,
        expires_at=row.expires_at,
        occurred_at=row.created_at,
    )
    return OutboxEvent.of(payloads.APPROVAL_CREATED, row.id, row.account_id, data)


def _approval_resolved(row: Row[Any]) -> OutboxEvent | None:
    decision = _RESOLVED.get(row.status)
    if decision is None:
        return None  # still pending
    method = row.method or ("timeout" if row.status == "expired" else None)
    if method not in _METHODS:
        raise MalformedRowError(f"method {row.method!r} is not one of {sorted(_METHODS)}")
    occurred = row.resolved_at or row.expires_at
    data = payloads.approval_resolved(
        approval_id=row.id,
        tool_call_id=int(row.tool_call_id),
        account_id=row.account_id,
        server=row.server,
        tool=row.tool,
        args_hash=row.args_hash,
        decision=decision,
        method=cast(Method, method),
        resolved_by=row.resolved_by,
        occurred_at=occurred,
    )
    return OutboxEvent.of(payloads.APPROVAL_RESOLVED, row.id, row.account_id, data)


def _load_position(conn: Connection, stream: str) -> int | None:
    row = conn.execute(
        sa.select(tail_state.c.position).where(tail_state.c.stream == stream)
    ).first()
    return None if row is None else int(row.position or 0)


def _save_state(
    conn: Connection,
    stream: str,
    now: datetime,
    *,
    position: int | None,
    watermark: datetime | None = None,
) -> None:
    values = {"position": position, "watermark": watermark, "updated_at": now}
    updated = conn.execute(
        sa.update(tail_state).where(tail_state.c.stream == stream).values(values)
    )
    if not updated.rowcount:
        conn.execute(sa.insert(tail_state).values(stream=stream, **values))


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _chunks(items: Sequence[int], size: int) -> list[Sequence[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
