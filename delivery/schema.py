"""The tables ``delivery`` owns (endpoints, the delivery log), on their own ``metadata``.

``delivery`` never imports ``scheduler``; the one contract table it reads, ``accounts``, is
declared here too, read-only and on a separate ``MetaData`` so that migrations ignore it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData()
# Declared only to read plans; the gateway owns this table and scheduler's migration creates it.
contract_metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and read back timezone-aware, on SQLite and PostgreSQL alike."""

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
        # SQLite hands back a naive datetime, or a string for rows another client wrote.
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(parsed, datetime)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


accounts = sa.Table(
    "accounts",
    contract_metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("plan", sa.Text, nullable=False),
)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    # Comma-separated, in the contract's order: a handful of fixed names, never queried by part.
    sa.Column("events", sa.Text, nullable=False),
    # Fernet token of the secret; the plain secret is never stored.
    sa.Column("secret_encrypted", sa.Text, nullable=False),
    sa.Column("hint", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # The last attempt's outcome, kept on the row so `endpoints list` needs no log scan.
    sa.Column("last_delivery_at", UTCDateTime),
    sa.Column("last_delivery_id", sa.Text),
    sa.Column("last_outcome", sa.Text),
    sa.Column("last_ok", sa.Boolean),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_webhook_endpoints_account", "account_id"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("delivery_id", sa.Text, nullable=False),
    sa.Column("endpoint_id", sa.Text, nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("error", sa.Text),
    # Retention deletes by time; an endpoint's history is read by endpoint and time.
    sa.Index("ix_webhook_deliveries_at", "at"),
    sa.Index("ix_webhook_deliveries_endpoint_at", "endpoint_id", "at"),
)
