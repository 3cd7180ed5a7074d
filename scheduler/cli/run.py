"""``run``, ``status`` and ``anomalies``: the daemon and the security team's view of it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import click
import sqlalchemy as sa

from delivery import format_time

from .. import logs
from ..anomalies import list_recorded
from ..state import detector_runs, outbox
from ._app import EXIT_FAILED, App, emit_json, fail, parse_time, pass_app


@click.command("run")
@click.option("--once", is_flag=True, help="Judge what is due, read the tail once, wait, exit.")
@pass_app
def run_command(app: App, once: bool) -> None:
    """The daemon: scheduled detectors, the blocked/approval hook, the dispatcher."""
    from ..daemon import Daemon  # the daemon pulls in httpx and APScheduler: only when run

    settings = app.settings
    logs.configure(settings.logging.format, settings.logging.level)
    engine = app.engine(migrate=True)
    daemon = Daemon(app.loaded, engine, config_path=app.config_path)
    code = asyncio.run(daemon.serve(once=once))
    raise SystemExit(code)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option(
    "--check",
    is_flag=True,
    help="Health check: exit 1 if a detector's last run failed (for probes and cron).",
)
@pass_app
def status_command(app: App, as_json: bool, check: bool) -> None:
    """Endpoint health and the detectors' last runs."""
    from delivery import EndpointStore, load_cipher

    engine = app.engine(migrate=True)
    store = EndpointStore(engine, load_cipher(app.settings.delivery.secret_key_file))
    endpoints = store.list()
    with engine.connect() as conn:
        runs = conn.execute(sa.select(detector_runs).order_by(detector_runs.c.detector)).all()
        pending = conn.execute(
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.done_at.is_(None))
        ).scalar()
    document: dict[str, Any] = {
        "endpoints": [
            {
                "id": e.id,
                "accountId": e.account_id,
                "url": e.url,
                "lastDelivery": None
                if e.last_delivery is None
                else {
                    "at": format_time(e.last_delivery.at),
                    "ok": e.last_delivery.ok,
                    "status": e.last_delivery.status,
                    "error": e.last_delivery.error,
                },
            }
            for e in endpoints
        ],
        "detectors": [
            {
                "detector": r.detector,
                "lastRunAt": r.last_run_at and format_time(r.last_run_at),
                "lastWindowEnd": r.last_window_end and format_time(r.last_window_end),
                "outcome": r.last_outcome,
                "error": r.last_error,
                "durationS": r.last_duration_s,
                "anomalies": r.last_anomalies,
            }
            for r in runs
        ],
        "outboxPending": pending,
    }
    failed = [d["detector"] for d in document["detectors"] if d["outcome"] == "failed"]
    if as_json:
        emit_json(document)
    else:
        _print_status(document, pending)
    if check and failed:
        fail(f"unhealthy: the last run of {', '.join(failed)} failed", EXIT_FAILED)


def _print_status(document: dict[str, Any], pending: int | None) -> None:
    click.echo("Endpoints:")
    if not document["endpoints"]:
        click.echo("  (none)")
    for ep in document["endpoints"]:
        last = ep["lastDelivery"]
        health = (
            "never delivered"
            if last is None
            else (
                f"last delivery {'ok' if last['ok'] else 'FAILED'} at {last['at']} "
                f"({last['status'] if last['status'] is not None else last['error']})"
            )
        )
        click.echo(f"  {ep['id']}  {ep['accountId']}  {ep['url']}  {health}")
    click.echo("Detectors:")
    if not document["detectors"]:
        click.echo("  (no runs yet)")
    for d in document["detectors"]:
        click.echo(
            f"  {d['detector']:<16} last run {d['lastRunAt'] or '-'}  {d['outcome'] or '-'}"
            f"  windows judged up to {d['lastWindowEnd'] or '-'}"
            + (f"  error: {d['error']}" if d["error"] else "")
        )
    click.echo(f"Events waiting for delivery: {pending}")


@click.command("anomalies")
@click.option("--since", help="Only anomalies detected at or after T (ISO 8601, UTC by default).")
@click.option("--account", "account_id", help="Only this account.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def anomalies_command(app: App, since: str | None, account_id: str | None, as_json: bool) -> None:
    """Recorded anomalies and what became of each (sent, suppressed, skipped)."""
    since_at: datetime | None = parse_time(since, "--since") if since else None
    engine = app.engine(migrate=True)
    found = list_recorded(engine, since=since_at, account_id=account_id)
    if as_json:
        emit_json({"anomalies": found})
        return
    if not found:
        click.echo(
            "no anomalies recorded" + (f" since {format_time(since_at)}" if since_at else "")
        )
        return
    for a in found:
        where = f" {a['server']}/{a['tool']}" if a.get("tool") else ""
        click.echo(
            f"{a['detectedAt']}  {a['accountId']}  {a['type']}{where}  {a['severity']}  "
            f"{a['outcome']}  {a['summary']}"
        )
    click.echo(f"{len(found)} anomalies (as of {format_time(datetime.now(UTC))})")
