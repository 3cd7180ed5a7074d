"""The detectors' data: counts per time bucket, kept up to date from the activity log.

The activity log is only ever read with SQL ``GROUP BY``: the rollups hold, per five-minute
bucket (``detectors.WINDOW_GRANULARITY_S``), the number of calls and of denied calls per
account and per (account, server, tool). A detector's window is a whole number of buckets, so
its counts are one more ``GROUP BY`` over the rollups. Buckets are integer epoch seconds (UTC),
which makes the arithmetic identical on SQLite and PostgreSQL.

A refresh recomputes the buckets from a little before its previous refresh (the re-read margin)
onwards, replacing them: rows that became visible late are counted, nothing is counted twice,
and the cost follows the new rows, not the history. The first refresh builds everything, one
day per transaction so the gateway's writers never wait long.

The (account, server, tool) pairs already seen are kept in ``detection_known_tools``, so that
``new_tool`` is a lookup rather than a scan of history.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite

from detectors import (
    DAY_S,
    WINDOW_GRANULARITY_S,
    Level,
    ToolKey,
    empty_counts,
    epoch_s,
    from_epoch_s,
)

from .schema import activity_log, metadata

BUCKET_S: Final = WINDOW_GRANULARITY_S
#: The decisions the contract allows; a row with any other is malformed and skipped.
DECISIONS: Final = ("allow", "deny", "require_approval")
# The first build commits one day of buckets at a time (SQLite has one writer at a time).
_BUILD_CHUNK_S: Final = DAY_S
# Reading listed windows beats a range scan up to about this many buckets in the IN list.
_MAX_IN_BUCKETS: Final = 2000
_REFRESHED_UNTIL: Final = "refreshed_until"
_KNOWN_SEEDED: Final = "known_tools_seeded"
_EPOCH = sa.BigInteger()

rollup_accounts = sa.Table(
    "detection_rollup_accounts",
    metadata,
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.Text, primary_key=True),
    sa.Column("calls", sa.BigInteger, nullable=False),
    sa.Column("denied", sa.BigInteger, nullable=False),
)

rollup_tools = sa.Table(
    "detection_rollup_tools",
    metadata,
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.Text, primary_key=True),
    sa.Column("server", sa.Text, primary_key=True),
    sa.Column("tool", sa.Text, primary_key=True),
    sa.Column("calls", sa.BigInteger, nullable=False),
    sa.Column("denied", sa.BigInteger, nullable=False),
)

# Every pair an account has used, with the bucket it was first seen in. Never forgets: a tool
# used again after a long gap is not new.
known_tools = sa.Table(
    "detection_known_tools",
    metadata,
    sa.Column("account_id", sa.Text, primary_key=True),
    sa.Column("server", sa.Text, primary_key=True),
    sa.Column("tool", sa.Text, primary_key=True),
    sa.Column("first_seen", sa.BigInteger, nullable=False),
)

# Where the rollups stand ("refreshed_until") and whether the known pairs were seeded.
rollup_state = sa.Table(
    "detection_state",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True)
class RefreshStats:
    """What one refresh read.

    Attributes:
        read_from: the start of the re-read range (None when the log was empty).
        rows: valid activity rows counted in that range.
        malformed: rows in that range skipped as malformed (unknown decision, NULL field or
            unreadable time). A row in the re-read margin is seen by two refreshes.
        buckets: rollup rows written.
        seconds: how long it took.
    """

    read_from: datetime | None
    rows: int
    malformed: int
    buckets: int
    seconds: float


def bucket_of(column: Any, dialect: str, size: int = BUCKET_S) -> sa.ColumnElement[int]:
    """SQL: the start (epoch seconds) of the ``size``-second bucket that a timestamp falls in."""
    n: sa.ColumnElement[int] = sa.literal_column(str(int(size)), _EPOCH)
    if dialect == "sqlite":
        # strftime('%s') reads both SQLAlchemy's and ISO 8601 forms; NULL if unreadable.
        seconds = sa.cast(sa.func.strftime("%s", column), _EPOCH)
        return (seconds // n) * n
    seconds_pg = sa.func.floor(sa.extract("epoch", column) / n)
    return sa.cast(seconds_pg, _EPOCH) * n


def _valid(bucket: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    a = activity_log.c
    return sa.and_(
        a.account_id.is_not(None),
        a.server.is_not(None),
        a.tool.is_not(None),
        a.decision.in_(DECISIONS),
        bucket.is_not(None),
    )


def _denied() -> sa.ColumnElement[int]:
    return sa.func.sum(sa.case((activity_log.c.decision == "deny", 1), else_=0))


def _align(value: int, size: int = BUCKET_S) -> int:
    return value // size * size


class Rollups:
    """The rollup tables of one database. The caller owns the engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    # -- writing --------------------------------------------------------------------------------

    def refresh(self, now: datetime, reread_margin_s: int) -> RefreshStats:
        """Bring the rollups up to date with the activity log.

        Reads the rows from ``reread_margin_s`` before the previous refresh onwards (all of
        them the first time) and replaces those buckets.
        """
        started = time.monotonic()
        with self.engine.connect() as conn:
            until = _get_state(conn, _REFRESHED_UNTIL)
            if until is None:
                first = conn.execute(sa.select(sa.func.min(activity_log.c.created_at))).scalar()
                lower = None if first is None else _align(epoch_s(first))
            else:
                lower = _align(until - reread_margin_s)
        rows = malformed = buckets = 0
        if lower is not None:
            now_s = epoch_s(now)
            chunk_starts = list(range(lower, now_s - _BUILD_CHUNK_S, _BUILD_CHUNK_S)) or [lower]
            for i, start in enumerate(chunk_starts):
                end = chunk_starts[i + 1] if i + 1 < len(chunk_starts) else None
                with self.engine.begin() as conn:
                    r, m, b = self._rebuild(conn, start, end)
                rows, malformed, buckets = rows + r, malformed + m, buckets + b
        with self.engine.begin() as conn:
            _set_state(conn, self.dialect, _REFRESHED_UNTIL, epoch_s(now))
        return RefreshStats(
            read_from=None if lower is None else from_epoch_s(lower),
            rows=rows,
            malformed=malformed,
            buckets=buckets,
            seconds=time.monotonic() - started,
        )

    def _rebuild(self, conn: Connection, start: int, end: int | None) -> tuple[int, int, int]:
        """Recompute the buckets in [start, end) (end None: onwards) from the activity log."""
        a = activity_log.c
        bucket = bucket_of(a.created_at, self.dialect)
        by_time = [a.created_at >= from_epoch_s(start)]
        in_range = [*by_time, bucket >= start]
        if end is not None:
            by_time.append(a.created_at < from_epoch_s(end))
            in_range += [a.created_at < from_epoch_s(end), bucket < end]
        valid = _valid(bucket)
        # Malformed rows are counted by time alone: an unreadable time has no bucket.
        counted = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(sa.case((valid, 1), else_=0)), 0),
            ).where(*by_time)
        ).one()
        total, good = int(counted[0]), int(counted[1])

        for table in (rollup_tools, rollup_accounts):
            clear = table.delete().where(table.c.bucket >= start)
            if end is not None:
                clear = clear.where(table.c.bucket < end)
            conn.execute(clear)
        grouped = (
            sa.select(bucket, a.account_id, a.server, a.tool, sa.func.count(), _denied())
            .where(*in_range, valid)
            .group_by(bucket, a.account_id, a.server, a.tool)
        )
        names = ["bucket", "account_id", "server", "tool", "calls", "denied"]
        written = conn.execute(rollup_tools.insert().from_select(names, grouped)).rowcount
        t = rollup_tools.c
        per_account = sa.select(t.bucket, t.account_id, sa.func.sum(t.calls), sa.func.sum(t.denied))
        per_account = per_account.where(t.bucket >= start)
        if end is not None:
            per_account = per_account.where(t.bucket < end)
        per_account = per_account.group_by(t.bucket, t.account_id)
        written += conn.execute(
            rollup_accounts.insert().from_select(
                ["bucket", "account_id", "calls", "denied"], per_account
            )
        ).rowcount
        return good, total - good, max(written, 0)

    # -- reading --------------------------------------------------------------------------------

    def counts(
        self,
        level: Level,
        window_s: int,
        since_s: int,
        until_s: int,
        accounts: Collection[str] | None = None,
        starts: Collection[int] | None = None,
    ) -> pd.DataFrame:
        """Calls and denied calls per window of ``window_s`` in [since_s, until_s), per account
        (``level="account"``) or per (account, server, tool) (``level="tool"``); only the
        windows in ``starts`` if given (read through the primary key, not the whole range)."""
        table = rollup_accounts if level == "account" else rollup_tools
        keys = [table.c.account_id] + ([table.c.server, table.c.tool] if level == "tool" else [])
        w: sa.ColumnElement[int] = sa.literal_column(str(int(window_s)), _EPOCH)
        start = ((table.c.bucket // w) * w).label("start")
        query = (
            sa.select(
                *keys,
                start,
                sa.func.sum(table.c.calls).label("calls"),
                sa.func.sum(table.c.denied).label("denied"),
            )
            .where(table.c.bucket >= since_s, table.c.bucket < until_s)
            .group_by(*keys, start)
        )
        if accounts is not None:
            query = query.where(table.c.account_id.in_(sorted(accounts)))
        if starts is not None and len(starts) * window_s // BUCKET_S <= _MAX_IN_BUCKETS:
            buckets = [s + i for s in starts for i in range(0, window_s, BUCKET_S)]
            query = query.where(table.c.bucket.in_(buckets))
        with self.engine.connect() as conn:
            return _frame(level, conn.execute(query))


def _frame(level: Level, rows: Iterable[Any]) -> pd.DataFrame:
    empty = empty_counts(level)
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(empty.columns))
    if frame.empty:
        return empty
    return frame.astype({"start": "int64", "calls": "int64", "denied": "int64"})


class KnownTools(Protocol):
    """The (account, server, tool) pairs already seen, for ``new_tool``."""

    def snapshot(self, accounts: Collection[str]) -> tuple[frozenset[ToolKey], dict[str, datetime]]:
        """The known pairs of ``accounts`` and when each of them was first seen."""
        ...

    def learn(self, pairs: Iterable[ToolKey], first_seen: datetime) -> None:
        """Remember ``pairs`` (already known ones keep their first sighting)."""
        ...


class MemoryKnownTools:
    """Known pairs held in memory: the backtest's, which must write nothing."""

    def __init__(self, first_seen: dict[ToolKey, int] | None = None) -> None:
        self._first_seen = dict(first_seen or {})
        self._since: dict[str, int] = {}
        for (account_id, _, _), seen in self._first_seen.items():
            self._since[account_id] = min(seen, self._since.get(account_id, seen))

    def snapshot(self, accounts: Collection[str]) -> tuple[frozenset[ToolKey], dict[str, datetime]]:
        wanted = set(accounts)
        pairs = frozenset(k for k in self._first_seen if k[0] in wanted)
        since = {a: from_epoch_s(s) for a, s in self._since.items() if a in wanted}
        return pairs, since

    def learn(self, pairs: Iterable[ToolKey], first_seen: datetime) -> None:
        seen = epoch_s(first_seen)
        for pair in pairs:
            self._first_seen.setdefault(pair, seen)
            self._since[pair[0]] = min(seen, self._since.get(pair[0], seen))


class DbKnownTools:
    """Known pairs in ``detection_known_tools``: the daemon's, so a restart re-reports none.

    The first use seeds the table from the rollups (every pair seen before the first judged
    window), so a daemon started on an existing history does not report it all as new.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def ensure_seeded(self, before: datetime) -> None:
        """Seed the known pairs from the rollups before ``before``, once per database."""
        with self.engine.begin() as conn:
            if _get_state(conn, _KNOWN_SEEDED) is not None:
                return
            t = rollup_tools.c
            seed = (
                sa.select(t.account_id, t.server, t.tool, sa.func.min(t.bucket))
                .where(t.bucket < epoch_s(before))
                .group_by(t.account_id, t.server, t.tool)
            )
            conn.execute(
                _insert_ignore(self.dialect, known_tools).from_select(
                    ["account_id", "server", "tool", "first_seen"], seed
                )
            )
            _set_state(conn, self.dialect, _KNOWN_SEEDED, epoch_s(before))

    def snapshot(self, accounts: Collection[str]) -> tuple[frozenset[ToolKey], dict[str, datetime]]:
        if not accounts:
            return frozenset(), {}
        k = known_tools.c
        pairs: set[ToolKey] = set()
        since: dict[str, int] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(k.account_id, k.server, k.tool, k.first_seen).where(
                    k.account_id.in_(sorted(accounts))
                )
            )
            for account_id, server, tool, first_seen in rows:
                pairs.add((account_id, server, tool))
                since[account_id] = min(first_seen, since.get(account_id, first_seen))
        return frozenset(pairs), {a: from_epoch_s(s) for a, s in since.items()}

    def learn(
        self, pairs: Iterable[ToolKey], first_seen: datetime, *, conn: Connection | None = None
    ) -> None:
        """Remember pairs as known; in ``conn``'s transaction if given (the daemon records the
        anomaly in the same one, so a crash cannot learn a tool without reporting it)."""
        values = [
            {"account_id": a, "server": s, "tool": t, "first_seen": epoch_s(first_seen)}
            for a, s, t in pairs
        ]
        if not values:
            return
        if conn is not None:
            conn.execute(_insert_ignore(self.dialect, known_tools), values)
            return
        with self.engine.begin() as own:
            own.execute(_insert_ignore(self.dialect, known_tools), values)


def _insert_ignore(dialect: str, table: sa.Table) -> Any:
    """INSERT that leaves an existing row (same primary key) as it is."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _get_state(conn: Connection, key: str) -> int | None:
    value = conn.execute(sa.select(rollup_state.c.value).where(rollup_state.c.key == key)).scalar()
    return None if value is None else int(value)


def _set_state(conn: Connection, dialect: str, key: str, value: int) -> None:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(rollup_state).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


class ActivityCounts:
    """Counts straight from the activity log, for the backtest (which writes nothing).

    Every method is one ``GROUP BY`` over a time range of the log; no raw row reaches Python.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def _range(
        self, since_s: int | None, until_s: int, accounts: Collection[str] | None
    ) -> list[sa.ColumnElement[bool]]:
        a = activity_log.c
        bucket = bucket_of(a.created_at, self.dialect)
        where = [a.created_at < from_epoch_s(until_s), bucket < until_s, _valid(bucket)]
        if since_s is not None:
            where += [a.created_at >= from_epoch_s(since_s), bucket >= since_s]
        if accounts is not None:
            where.append(a.account_id.in_(sorted(accounts)))
        return where

    def counts(
        self,
        level: Level,
        window_s: int,
        since_s: int,
        until_s: int,
        accounts: Collection[str] | None = None,
    ) -> pd.DataFrame:
        """Like ``Rollups.counts``, from the activity log."""
        a = activity_log.c
        keys = [a.account_id] + ([a.server, a.tool] if level == "tool" else [])
        start = bucket_of(a.created_at, self.dialect, window_s).label("start")
        query = (
            sa.select(*keys, start, sa.func.count().label("calls"), _denied().label("denied"))
            .where(*self._range(since_s, until_s, accounts))
            .group_by(*keys, start)
        )
        with self.engine.connect() as conn:
            return _frame(level, conn.execute(query))

    def first_seen_before(
        self, before_s: int, accounts: Collection[str] | None = None
    ) -> dict[ToolKey, int]:
        """Every pair used before ``before_s``, with the bucket it was first used in."""
        return self.first_buckets(None, before_s, accounts)

    def days(
        self,
        since_s: int,
        until_s: int,
        level: Level,
        window_s: int,
        accounts: Collection[str] | None = None,
    ) -> Iterator[tuple[int, int, pd.DataFrame]]:
        """Counts per ``window_s`` window over [since_s, until_s), one day per query.

        Yields ``(day_start, day_end, frame)``. A day at a time keeps SQLite's grouping in
        memory and each result small; windows never cross a day.
        """
        for day in range(_align(since_s, DAY_S), until_s, DAY_S):
            lo, hi = max(day, since_s), min(day + DAY_S, until_s)
            yield lo, hi, self.counts(level, window_s, lo, hi, accounts)

    def first_buckets(
        self, since_s: int | None, until_s: int, accounts: Collection[str] | None = None
    ) -> dict[ToolKey, int]:
        """Each pair used in [since_s, until_s) (since the beginning if ``since_s`` is None),
        with the first bucket it was used in."""
        a = activity_log.c
        bucket = bucket_of(a.created_at, self.dialect)
        query = (
            sa.select(a.account_id, a.server, a.tool, sa.func.min(bucket))
            .where(*self._range(since_s, until_s, accounts))
            .group_by(a.account_id, a.server, a.tool)
        )
        with self.engine.connect() as conn:
            return {(r[0], r[1], r[2]): int(r[3]) for r in conn.execute(query)}

    def first_uses(
        self,
        window_s: int,
        since_s: int,
        until_s: int,
        accounts: Collection[str] | None = None,
    ) -> pd.DataFrame:
        """Each pair's first window in [since_s, until_s), with its counts in that window.

        Replaying ``new_tool`` window by window only ever looks at a pair in its first window:
        after that it is known. So this is all the backtest needs, in one small result.
        """
        a = activity_log.c
        start = bucket_of(a.created_at, self.dialect, window_s)
        where = self._range(since_s, until_s, accounts)
        first = (
            sa.select(a.account_id, a.server, a.tool, sa.func.min(start).label("first"))
            .where(*where)
            .group_by(a.account_id, a.server, a.tool)
            .subquery("first_use")
        )
        f = first.c
        query = (
            sa.select(
                a.account_id,
                a.server,
                a.tool,
                f.first.label("start"),
                sa.func.count().label("calls"),
                _denied().label("denied"),
            )
            .join_from(
                activity_log,
                first,
                sa.and_(
                    a.account_id == f.account_id,
                    a.server == f.server,
                    a.tool == f.tool,
                    start == f.first,
                ),
            )
            .where(*where)
            .group_by(a.account_id, a.server, a.tool, f.first)
        )
        with self.engine.connect() as conn:
            return _frame("tool", conn.execute(query))
