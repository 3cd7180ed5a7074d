"""The outbox: every event is written down under a unique key before it is handed to delivery.

Why: the dispatcher is fire-and-forget and in memory. Writing the event first, in the same
transaction that moves the tail (or records the anomaly), means a crash can lose nothing that was
committed, and the unique key means the tail, the in-process hook and a restart can never send
the same event twice. A row is marked done once every subscribed endpoint had its attempt; rows
still pending at start-up are handed to delivery again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite

from delivery import payloads

from .state import outbox

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """What the outbox needs of the dispatcher."""

    def publish(
        self,
        account_id: str,
        event_type: str,
        data: Mapping[str, Any],
        *,
        on_done: Callable[[], None] | None = None,
    ) -> bool: ...


@dataclass(frozen=True)
class OutboxEvent:
    """An event to send once: ``key`` names its cause, e.g. ``call.blocked:123``."""

    key: str
    account_id: str
    event_type: str
    data: Mapping[str, Any]

    @classmethod
    def of(
        cls, event_type: str, cause: object, account_id: str, data: Mapping[str, Any]
    ) -> OutboxEvent:
        """The event of type ``event_type`` caused by ``cause`` (a tool call, approval or
        anomaly id), keyed so that every path that sees the same cause makes the same key."""
        return cls(event_key(event_type, cause), account_id, event_type, data)


def event_key(event_type: str, cause: object) -> str:
    """``call.blocked:123``: the tail, the hook and a restart all agree on it."""
    return f"{event_type}:{cause}"


def insert_new(
    conn: Connection, events: Sequence[OutboxEvent], now: datetime
) -> list[tuple[int, OutboxEvent]]:
    """Insert the events whose key is not in the outbox yet, in the caller's transaction.

    Returns:
        The inserted events with their row ids, in the order given.
    """
    if not events:
        return []
    by_key = {e.key: e for e in events}
    rows = [
        {
            "key": e.key,
            "account_id": e.account_id,
            "event_type": e.event_type,
            "data": dict(e.data),
            "created_at": now,
        }
        for e in by_key.values()
    ]
    dialect = conn.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(outbox)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(outbox.c.id, outbox.c.key)
    )
    # executemany with RETURNING: SQLAlchemy batches it into multi-row INSERTs itself, and the
    # statement compiles once (a VALUES list per batch size would fill the compiled cache).
    inserted = {key: row_id for row_id, key in conn.execute(stmt, rows)}
    return [(inserted[e.key], e) for e in by_key.values() if e.key in inserted]


def _must_follow(event: OutboxEvent) -> str | None:
    """The key of the event that must be delivered before this one, if any."""
    if event.event_type == payloads.APPROVAL_RESOLVED:
        return event_key(payloads.APPROVAL_CREATED, event.key.split(":", 1)[1])
    return None


# Longer than any gap between a pending-rows read and the send of its result.
_FINISHED_MEMORY_S = 60.0


class OutboxRelay:
    """Hands outbox rows to the dispatcher and marks them done when their attempts are over.

    ``send``, ``take_done`` and ``forget`` run on the event loop (the dispatcher calls back
    there); ``load_pending``, ``mark_done`` and ``purge`` touch the database and run in a worker
    thread.
    """

    def __init__(self, engine: Engine, publisher: Publisher) -> None:
        self._engine = engine
        self._publisher = publisher
        self._in_flight: set[int] = set()
        self._keys_in_flight: set[str] = set()
        # Events held back until the event whose key they are filed under is delivered.
        self._waiting: dict[str, tuple[int, OutboxEvent]] = {}
        self._done: list[int] = []
        # Ids finished recently, oldest first (insertion order), with when they finished.
        self._finished: dict[int, float] = {}
        #: Set when an event finished; the daemon marks it done at once, so that a crash
        #: re-sends as little as possible.
        self.has_done = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def send(self, events: Iterable[tuple[int, OutboxEvent]]) -> int:
        """Publish freshly inserted events now; returns how many the dispatcher took.

        An event the dispatcher refuses (its queue is full) stays pending in the outbox and
        goes out with the next :meth:`load_pending`. An approval's resolution waits until its
        creation has been delivered: endpoints are served concurrently, and a receiver must
        never hear of a decision on an approval it does not know yet.
        """
        taken = 0
        for row_id, event in events:
            if row_id in self._in_flight or row_id in self._finished:
                continue
            before = _must_follow(event)
            if before is not None and before in self._keys_in_flight:
                self._in_flight.add(row_id)
                self._waiting[before] = (row_id, event)
                continue
            taken += self._publish(row_id, event)
        return taken

    def _publish(self, row_id: int, event: OutboxEvent) -> int:
        self._in_flight.add(row_id)
        self._keys_in_flight.add(event.key)
        ok = self._publisher.publish(
            event.account_id, event.event_type, event.data, on_done=self._marker(row_id, event.key)
        )
        if not ok:
            self._in_flight.discard(row_id)
            self._keys_in_flight.discard(event.key)
            self._release(event.key)
        return int(ok)

    def _marker(self, row_id: int, key: str) -> Callable[[], None]:
        def done() -> None:
            self._done.append(row_id)
            self._keys_in_flight.discard(key)
            self.has_done.set()
            self._release(key)

        return done

    def _release(self, key: str) -> None:
        waiting = self._waiting.pop(key, None)
        if waiting is not None:
            self._in_flight.discard(waiting[0])
            self._publish(*waiting)

    def in_flight_ids(self) -> frozenset[int]:
        """A snapshot of the ids in flight (on the loop), for :meth:`load_pending`."""
        return frozenset(self._in_flight)

    def load_pending(
        self, limit: int = 1000, in_flight: frozenset[int] = frozenset()
    ) -> list[tuple[int, OutboxEvent]]:
        """Rows not done and not in flight: left by a crash, or refused by a full queue.

        Blocking (a database read): call it from a worker thread with the loop's
        :meth:`in_flight_ids`, then :meth:`send` the result on the loop (which skips what
        finished meanwhile).
        """
        query = (
            sa.select(
                outbox.c.id, outbox.c.key, outbox.c.account_id, outbox.c.event_type, outbox.c.data
            )
            .where(outbox.c.done_at.is_(None))
            .order_by(outbox.c.id)
            .limit(limit + len(in_flight))
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            (r.id, OutboxEvent(r.key, r.account_id, r.event_type, r.data))
            for r in rows
            if r.id not in in_flight
        ][:limit]

    def take_done(self) -> list[int]:
        """The ids whose attempts finished since the last call (on the loop)."""
        ids, self._done = self._done, []
        return ids

    def mark_done(self, ids: Sequence[int], now: datetime | None = None) -> None:
        """Record finished events in one statement per 500 (blocking: a worker thread)."""
        now = now or datetime.now(UTC)
        with self._engine.begin() as conn:
            for start in range(0, len(ids), 500):
                conn.execute(
                    sa.update(outbox)
                    .where(outbox.c.id.in_(ids[start : start + 500]))
                    .values(done_at=now)
                )

    def forget(self, ids: Iterable[int]) -> None:
        """Drop finished ids from the in-flight set once they are marked (on the loop).

        They are remembered for a while: a :meth:`load_pending` that read them just before
        they were marked done must not send them again.
        """
        now = time.monotonic()
        for row_id in ids:
            self._in_flight.discard(row_id)
            self._finished[row_id] = now
        while self._finished:
            oldest, at = next(iter(self._finished.items()))
            if now - at < _FINISHED_MEMORY_S:
                break
            del self._finished[oldest]

    def purge(self, before: datetime) -> int:
        """Forget done events finished before ``before`` (their keys are no longer needed)."""
        with self._engine.begin() as conn:
            result = conn.execute(
                sa.delete(outbox).where(outbox.c.done_at.is_not(None), outbox.c.done_at < before)
            )
        return int(result.rowcount or 0)
