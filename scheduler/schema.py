"""The tables the gateway writes (the contract's ``accounts``, ``activity_log``, ``approvals``).

This package's own tables are declared next to the code that owns them, on the same ``metadata``
(``scheduler.rollups``, ``scheduler.state``); ``delivery`` declares its tables on its own.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from delivery import metadata as delivery_metadata

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and read back timezone-aware, on SQLite and PostgreSQL alike.

    SQLite keeps no zone, PostgreSQL converts to the session's; both come back as aware UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = (
            datetime.fromisoformat(value) if isinstance(value, str) else value
        )  # a string: a row written by another SQLite client
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("plan", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

activity_log = sa.Table(
    "activity_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("api_key_id", sa.Text),
    sa.Column("server", sa.Text, nullable=False),
    sa.Column("tool", sa.Text, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("policy_id", sa.Text),
    sa.Column("rule_id", sa.Text),
    sa.Column("args_hash", sa.Text, nullable=False),
    sa.Column("latency_ms", sa.Integer),
    # The detectors' rollups read by time; per-account history reads by account and time.
    sa.Index("ix_activity_log_created_at", "created_at"),
    sa.Index("ix_activity_log_account_created", "account_id", "created_at"),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("tool_call_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("server", sa.Text, nullable=False),
    sa.Column("tool", sa.Text, nullable=False),
    sa.Column("args_hash", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("method", sa.Text),
    sa.Column("resolved_by", sa.Text),
    # The tail reads new approvals by creation time and resolutions by resolution time.
    sa.Index("ix_approvals_created_at", "created_at"),
    sa.Index("ix_approvals_resolved_at", "resolved_at"),
    sa.Index("ix_approvals_account_created", "account_id", "created_at"),
)

# Modules that declare this package's own tables on `metadata`; imported so that Alembic and
# the tests see every table. Each entry is added by the module's author.
_TABLE_MODULES: tuple[str, ...] = ("scheduler.rollups", "scheduler.state")


def all_metadata() -> list[MetaData]:
    """Every table of the database, for Alembic and the schema tests."""
    for name in _TABLE_MODULES:
        importlib.import_module(name)
    return [metadata, delivery_metadata]
