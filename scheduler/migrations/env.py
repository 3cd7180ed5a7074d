"""Alembic's entry point: runs on the connection that scheduler.db.upgrade() hands it."""

from __future__ import annotations

from alembic import context

from scheduler.schema import all_metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `enforgate-webhooks db upgrade`")

context.configure(
    connection=connection,
    target_metadata=all_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
