"""``db upgrade`` and ``config check``."""

from __future__ import annotations

import json

import click

from ..config import redacted
from ._app import App, pass_app


@click.group("db")
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade")
@pass_app
def db_upgrade(app: App) -> None:
    """Apply the migrations (``run`` does it too, on start)."""
    app.engine(migrate=True)
    click.echo(f"database is up to date: {_display_url(app)}")


@click.group("config")
def config_group() -> None:
    """The configuration."""


@config_group.command("check")
@pass_app
def config_check(app: App) -> None:
    """Validate the config and print the effective settings, secrets redacted."""
    loaded = app.loaded
    click.echo(f"config: {loaded.source} (valid)")
    if loaded.overrides:
        click.echo(f"overridden by: {', '.join(loaded.overrides)}")
    click.echo(json.dumps(redacted(loaded.settings), indent=2))


def _display_url(app: App) -> str:
    return str(redacted(app.settings)["database"]["url"])
