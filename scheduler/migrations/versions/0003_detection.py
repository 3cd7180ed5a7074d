"""The detectors' rollups, the known (account, server, tool) pairs and the rollups' state.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detection_rollup_accounts",
        sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("calls", sa.BigInteger, nullable=False),
        sa.Column("denied", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "detection_rollup_tools",
        sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("server", sa.Text, primary_key=True),
        sa.Column("tool", sa.Text, primary_key=True),
        sa.Column("calls", sa.BigInteger, nullable=False),
        sa.Column("denied", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "detection_known_tools",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("server", sa.Text, primary_key=True),
        sa.Column("tool", sa.Text, primary_key=True),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "detection_state",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("detection_state")
    op.drop_table("detection_known_tools")
    op.drop_table("detection_rollup_tools")
    op.drop_table("detection_rollup_accounts")
