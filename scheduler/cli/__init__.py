"""The ``enforgate-webhooks`` command line (the contract's section 3)."""

from __future__ import annotations

import click

from ._app import App
from .admin import config_group, db_group
from .detect import detect_command
from .endpoints import endpoints_group
from .run import anomalies_command, run_command, status_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="ENFORGATE_CONFIG",
    type=click.Path(dir_okay=False),
    help="Config file (TOML). Default: ./enforgate.toml if present, else built-in defaults.",
)
@click.version_option(package_name="enforgate-webhooks")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Signed webhooks and anomaly detection for the Enforgate gateway."""
    app = App(config_path)
    ctx.obj = app
    ctx.call_on_close(app.close)


cli.add_command(run_command)
cli.add_command(status_command)
cli.add_command(anomalies_command)
cli.add_command(db_group)
cli.add_command(config_group)
cli.add_command(endpoints_group)
cli.add_command(detect_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="enforgate-webhooks")


__all__ = ["cli", "main"]
