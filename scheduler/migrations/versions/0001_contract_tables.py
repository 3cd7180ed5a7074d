"""The contract's tables: accounts, activity_log, approvals.

In production the gateway creates and writes them; created here so that the embedded SQLite
default works on its own.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_table(
        "activity_log",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("api_key_id", sa.Text),
        sa.Column("server", sa.Text, nullable=False),
        sa.Column("tool", sa.Text, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("policy_id", sa.Text),
        sa.Column("rule_id", sa.Text),
        sa.Column("args_hash", sa.Text, nullable=False),
        sa.Column("latency_ms", sa.Integer),
    )
    op.create_index("ix_activity_log_created_at", "activity_log", ["created_at"])
    op.create_index("ix_activity_log_account_created", "activity_log", ["account_id", "created_at"])
    op.create_table(
        "approvals",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("tool_call_id", _ID, nullable=False),
        sa.Column("server", sa.Text, nullable=False),
        sa.Column("tool", sa.Text, nullable=False),
        sa.Column("args_hash", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.Column("resolved_at", _TIME),
        sa.Column("method", sa.Text),
        sa.Column("resolved_by", sa.Text),
    )
    op.create_index("ix_approvals_created_at", "approvals", ["created_at"])
    op.create_index("ix_approvals_resolved_at", "approvals", ["resolved_at"])
    op.create_index("ix_approvals_account_created", "approvals", ["account_id", "created_at"])


def downgrade() -> None:
    op.drop_table("approvals")
    op.drop_table("activity_log")
    op.drop_table("accounts")
