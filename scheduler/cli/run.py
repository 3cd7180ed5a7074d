"""``run``, ``status`` and ``anomalies``: the daemon and the security team's view of it."""

from __future__ import annotations

import click

from ._app import App, pass_app


@click.command("run")
@click.option("--once", is_flag=True, help="Judge what is due, read the tail once, wait, exit.")
@pass_app
def run_command(app: App, once: bool) -> None:
    """The daemon: scheduled detectors, the blocked/approval hook, the dispatcher."""
    app.engine(migrate=True)
    click.echo("enforgate-webhooks: database migrated; the daemon is not built yet", err=True)


@click.command("status")
@pass_app
def status_command(app: App) -> None:
    """Endpoint health and the detectors' last runs."""
    app.engine(migrate=True)


@click.command("anomalies")
@pass_app
def anomalies_command(app: App) -> None:
    """Recorded anomalies and what became of each."""
    app.engine(migrate=True)
