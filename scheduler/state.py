"""The daemon's own tables: the outbox, the tail's position, detector runs and anomalies.

Everything the daemon must remember across a restart (or a ``kill -9``) lives here, so that no
committed event is lost and none is sent twice.
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import UTCDateTime, metadata

# One row per event the daemon has decided to send. `key` names the event's cause
# ("call.blocked:123", "approval.resolved:apr_1", "anomaly.detected:anm_…"): its uniqueness is
# what makes the tail, the in-process hook and a restart agree that an event goes out once.
outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # NULL until every subscribed endpoint had its attempt; pending rows are re-sent on start.
    sa.Column("done_at", UTCDateTime),
    sa.Index("ix_webhook_outbox_pending", "done_at", "id"),
)

# The tail's position per stream: the highest activity_log id read, or the approvals' watermark.
tail_state = sa.Table(
    "tail_state",
    metadata,
    sa.Column("stream", sa.Text, primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=True),
    sa.Column("watermark", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# activity_log ids below the tail's position that were not visible yet when it moved past them:
# a writer that commits late fills one in; a rolled-back insert never does, and ages out.
tail_gaps = sa.Table(
    "tail_gaps",
    metadata,
    sa.Column("activity_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("noticed_at", UTCDateTime, nullable=False),
)

# The last window each detector judged, and how its last run went (for `status`).
detector_runs = sa.Table(
    "detector_runs",
    metadata,
    sa.Column("detector", sa.Text, primary_key=True),
    sa.Column("last_window_end", UTCDateTime),
    sa.Column("last_run_at", UTCDateTime),
    sa.Column("last_duration_s", sa.Float),
    sa.Column("last_outcome", sa.Text),  # "ok" or "failed"
    sa.Column("last_error", sa.Text),
    sa.Column("last_anomalies", sa.Integer),
)

# Every anomaly ever found, under its fingerprint, and what became of it.
anomalies = sa.Table(
    "anomalies",
    metadata,
    sa.Column("anomaly_id", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.Text, nullable=False, unique=True),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("server", sa.Text),
    sa.Column("tool", sa.Text),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("window_end", UTCDateTime, nullable=False),
    sa.Column("detected_at", UTCDateTime, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),  # sent, suppressed_cooldown, skipped_too_old
    sa.Column("data", sa.JSON, nullable=False),
    # The cooldown looks up the last anomaly sent for the same account, type and server/tool.
    sa.Index("ix_anomalies_subject", "account_id", "type", "detected_at"),
    sa.Index("ix_anomalies_detected_at", "detected_at"),
)
