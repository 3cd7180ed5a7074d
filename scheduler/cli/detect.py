"""``detect``: the backtest (built by the detectors work)."""

from __future__ import annotations

import click


@click.command("detect")
def detect_command() -> None:
    """Run the detectors over history and print what would have fired; sends nothing."""
    raise click.UsageError("detect is not built yet")
