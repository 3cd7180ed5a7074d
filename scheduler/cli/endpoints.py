"""``endpoints add|list|remove|test`` (built by the delivery work)."""

from __future__ import annotations

import click


@click.group("endpoints")
def endpoints_group() -> None:
    """Webhook endpoints: add, list, remove, send a test."""
