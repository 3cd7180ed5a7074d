"""``detect``: the backtest. Replays history with the configured thresholds; sends nothing."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import click

from ..detection import BacktestResult, anomaly_data, backtest
from ._app import App, emit_json, fail, parse_time, pass_app

# A long replay reports progress on stderr at most this often.
_PROGRESS_EVERY_S = 2.0


@click.command("detect")
@click.option("--from", "from_", required=True, metavar="T", help="Start (ISO 8601, UTC).")
@click.option("--to", "to", required=True, metavar="T", help="End (ISO 8601, UTC), exclusive.")
@click.option("--account", metavar="ID", help="Only this account.")
@click.option("--json", "as_json", is_flag=True, help='Print {"anomalies": [...]} only.')
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE.png",
    help="Write volume and block rate per account, with baselines, thresholds and anomalies.",
)
@pass_app
def detect_command(
    app: App, from_: str, to: str, account: str | None, as_json: bool, plot: str | None
) -> None:
    """Run the detectors over history and print what would have fired; sends nothing.

    Each window is judged as the scheduled run would have judged it: with the data up to the
    window's end only, once the settle delay has passed.
    """
    start, end = parse_time(from_, "--from"), parse_time(to, "--to")
    if end <= start:
        fail(f"--to {to!r} must be after --from {from_!r}")
    if plot is not None and not plot.lower().endswith(".png"):
        fail(f"--plot {plot!r}: the plot is a PNG; name the file *.png")
    config = app.settings.detectors
    engine = app.engine(migrate=True)
    started = time.monotonic()
    result = backtest(
        engine,
        config,
        start,
        end,
        accounts=None if account is None else [account],
        progress=_Progress(),
    )
    click.echo(
        f"replayed {_span(start, end)} in {time.monotonic() - started:.1f}s",
        err=True,
    )
    if as_json:
        emit_json({"anomalies": [anomaly_data(f.anomaly, f.detected_at) for f in result.found]})
    else:
        _print_table(result)
    if plot is not None:
        panels = write_plot(result, Path(plot), title=_span(start, end))
        click.echo(f"plot written to {plot} ({panels} accounts)", err=True)


class _Progress:
    """Progress lines on stderr, at most every few seconds, so a long replay is not silent."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def __call__(self, name: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= _PROGRESS_EVERY_S or done == total:
            click.echo(f"{name}: {done}/{total} windows", err=True)
            self._last = now


def _span(start: datetime, end: datetime) -> str:
    return f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC"


def _print_table(result: BacktestResult) -> None:
    if result.found:
        header = ("window (UTC)", "account", "type", "server/tool", "observed vs threshold", "sev")
        rows = []
        for f in result.found:
            a = f.anomaly
            rate = a.type == "block_rate_jump"
            value = (
                f"{a.observed:.0%} vs {a.threshold:.0%}"
                if rate
                else f"{a.observed:,.0f} vs {a.threshold:,.0f}"
            )
            where = f"{a.server}/{a.tool}" if a.tool else "-"
            rows.append(
                (f"{a.window_start:%Y-%m-%d %H:%M}", a.account_id, a.type, where, value, a.severity)
            )
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        click.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "  summary")
        for row, f in zip(rows, result.found, strict=True):
            line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
            click.echo(f"{line}  {f.anomaly.summary}")
        click.echo("")
    counts = Counter[str](f.anomaly.type for f in result.found)
    for name, windows in result.windows.items():
        click.echo(f"{name}: {counts.get(name, 0)} anomalies in {windows} windows")
    if not result.windows:
        click.echo("no detector is enabled")


# -- --plot ------------------------------------------------------------------------------------

# More panels than this make an unreadable image; accounts with anomalies come first.
MAX_ACCOUNTS: Final = 12


def write_plot(result: BacktestResult, path: Path, title: str) -> int:
    """Write one row per account: call volume (left) and block rate (right), each with the
    detector's baseline and threshold band and a marker at each anomaly. Returns the rows."""
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window: the CLI runs on servers
    import matplotlib.pyplot as plt

    accounts = _pick_accounts(result)
    rows = max(len(accounts), 1)
    fig, axes = plt.subplots(rows, 2, figsize=(16, 2.6 * rows), squeeze=False, sharex=True)
    series = _series(result)
    for row, account in enumerate(accounts):
        volume, rate = axes[row][0], axes[row][1]
        _panel(volume, series.get(("call_spike", account), []), f"{account}: calls per window")
        _panel(rate, series.get(("block_rate_jump", account), []), f"{account}: share denied")
        for f in result.found:
            a = f.anomaly
            if a.account_id != account:
                continue
            if a.type == "new_tool":
                volume.axvline(a.window_start, color="tab:purple", linestyle=":", linewidth=1)
                volume.annotate(
                    f"new {a.tool}",
                    (a.window_start, 1),
                    xycoords=("data", "axes fraction"),
                    fontsize=7,
                    color="tab:purple",
                    rotation=90,
                    va="top",
                )
            elif a.server is None:
                axis = volume if a.type == "call_spike" else rate
                axis.plot(a.window_start, a.observed, "v", color="red", markersize=8)
    if not accounts:
        axes[0][0].set_title("no account had calls in this range")
    fig.suptitle(f"enforgate-webhooks detect: {title}  (red: anomaly; band: baseline..threshold)")
    fig.autofmt_xdate()
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the title
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return len(accounts)


def _pick_accounts(result: BacktestResult) -> list[str]:
    flagged = sorted({f.anomaly.account_id for f in result.found})
    volume = result.hourly.groupby("account_id")["calls"].sum().sort_values(ascending=False)
    rest = [str(a) for a in volume.index if a not in flagged]
    return (flagged + rest)[:MAX_ACCOUNTS]


def _series(result: BacktestResult) -> dict[tuple[str, str], list[tuple[datetime, Any]]]:
    out: dict[tuple[str, str], list[tuple[datetime, Any]]] = defaultdict(list)
    for name, assessed in result.assessments.items():
        for start, a in assessed:
            if a.server is None:
                out[(name, a.account_id)].append((start, a))
    return out


def _panel(axis: Any, points: list[tuple[datetime, Any]], title: str) -> None:
    axis.set_title(title, fontsize=9, loc="left")
    if not points:
        return
    points.sort(key=lambda p: p[0])
    times = [p[0] for p in points]
    axis.plot(times, [p[1].observed for p in points], color="tab:blue", linewidth=0.9)
    axis.plot(times, [p[1].baseline for p in points], color="tab:green", linewidth=0.8)
    axis.fill_between(
        times,
        [p[1].baseline for p in points],
        [p[1].threshold for p in points],
        color="tab:orange",
        alpha=0.2,
        step="post",
    )
    axis.plot(times, [p[1].threshold for p in points], color="tab:orange", linewidth=0.8)
    axis.grid(alpha=0.3)
