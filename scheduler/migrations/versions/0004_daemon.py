"""The daemon's tables: the outbox, the tail's position and gaps, detector runs, anomalies.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_outbox",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("key", sa.Text, nullable=False, unique=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("done_at", _TIME),
    )
    op.create_index("ix_webhook_outbox_pending", "webhook_outbox", ["done_at", "id"])
    op.create_table(
        "tail_state",
        sa.Column("stream", sa.Text, primary_key=True),
        sa.Column("position", sa.BigInteger),
        sa.Column("watermark", _TIME),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    op.create_table(
        "tail_gaps",
        sa.Column("activity_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("noticed_at", _TIME, nullable=False),
    )
    op.create_table(
        "detector_runs",
        sa.Column("detector", sa.Text, primary_key=True),
        sa.Column("last_window_end", _TIME),
        sa.Column("last_run_at", _TIME),
        sa.Column("last_duration_s", sa.Float),
        sa.Column("last_outcome", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("last_anomalies", sa.Integer),
    )
    op.create_table(
        "anomalies",
        sa.Column("anomaly_id", sa.Text, primary_key=True),
        sa.Column("fingerprint", sa.Text, nullable=False, unique=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("server", sa.Text),
        sa.Column("tool", sa.Text),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("window_end", _TIME, nullable=False),
        sa.Column("detected_at", _TIME, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_anomalies_subject", "anomalies", ["account_id", "type", "detected_at"])
    op.create_index("ix_anomalies_detected_at", "anomalies", ["detected_at"])


def downgrade() -> None:
    for table in ("anomalies", "detector_runs", "tail_gaps", "tail_state", "webhook_outbox"):
        op.drop_table(table)
