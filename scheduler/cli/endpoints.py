"""``endpoints add|list|remove|test``: webhook endpoints from the command line."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import click

from delivery import (
    DeliveryError,
    DeliveryRecord,
    DeliveryStorageError,
    Dispatcher,
    Endpoint,
    EndpointStore,
    SecretCipher,
    SecretKeyError,
    format_time,
    load_cipher,
)

from ._app import EXIT_FAILED, App, emit_json, fail, pass_app

# `endpoints test` waits this long for its own outcome to be written before giving up.
_TEST_CLOSE_DEADLINE_S = 5.0


def _cipher(app: App) -> SecretCipher:
    try:
        return load_cipher(app.settings.delivery.secret_key_file)
    except SecretKeyError as exc:
        fail(str(exc))


def _store(app: App) -> EndpointStore:
    return EndpointStore(
        app.engine(),
        _cipher(app),
        allow_insecure_localhost=app.settings.delivery.allow_insecure_localhost,
    )


def _fail_on(exc: DeliveryError) -> NoReturn:
    """Storage trouble is a failed operation (exit 1); anything else is bad input (exit 2)."""
    if isinstance(exc, DeliveryStorageError):
        fail(str(exc), EXIT_FAILED)
    fail(str(exc))


@click.group("endpoints")
def endpoints_group() -> None:
    """Webhook endpoints: add, list, remove, send a test."""


@endpoints_group.command("add")
@click.option("--account", "account_id", required=True, help="The account that owns it.")
@click.option("--url", required=True, help="https:// URL that receives the webhooks.")
@click.option(
    "--events",
    help="Comma-separated events (default: all four): call.blocked, approval.created, "
    "approval.resolved, anomaly.detected.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pass_app
def endpoints_add(app: App, account_id: str, url: str, events: str | None, as_json: bool) -> None:
    """Create an endpoint; prints its secret this one time."""
    wanted = None if events is None else [e.strip() for e in events.split(",") if e.strip()]
    try:
        created = _store(app).add(account_id, url, wanted)
    except DeliveryError as exc:
        _fail_on(exc)
    ep = created.endpoint
    if as_json:
        emit_json(
            {
                "id": ep.id,
                "accountId": ep.account_id,
                "url": ep.url,
                "events": list(ep.events),
                "secret": created.secret,
                "hint": ep.hint,
            }
        )
        return
    click.echo(f"created endpoint {ep.id} for account {ep.account_id}")
    click.echo(f"  url:     {ep.url}")
    click.echo(f"  events:  {', '.join(ep.events)}")
    click.echo(f"  secret:  {created.secret}")
    click.echo(f"  hint:    {ep.hint}")
    click.echo("The secret is shown only this once: store it with your receiver now.")


@endpoints_group.command("list")
@click.option("--account", "account_id", help="Only this account's endpoints.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pass_app
def endpoints_list(app: App, account_id: str | None, as_json: bool) -> None:
    """Endpoints with their last delivery; secrets only as hints."""
    try:
        endpoints = _store(app).list(account_id)
    except DeliveryError as exc:
        _fail_on(exc)
    if as_json:
        emit_json({"endpoints": [_endpoint_json(ep) for ep in endpoints]})
        return
    if not endpoints:
        click.echo("no endpoints")
        return
    for ep in endpoints:
        click.echo(f"{ep.id}  account {ep.account_id}  {ep.url}")
        click.echo(f"  events: {', '.join(ep.events)}")
        click.echo(f"  secret: {ep.hint}")
        click.echo(f"  {_last_delivery_text(ep)}")


def _endpoint_json(ep: Endpoint) -> dict[str, Any]:
    last = ep.last_delivery
    return {
        "id": ep.id,
        "accountId": ep.account_id,
        "url": ep.url,
        "events": list(ep.events),
        "hint": ep.hint,
        "lastDelivery": None
        if last is None
        else {
            "at": format_time(last.at),
            "ok": last.ok,
            "status": last.status,
            "error": last.error,
        },
    }


def _last_delivery_text(ep: Endpoint) -> str:
    last = ep.last_delivery
    if last is None:
        return "last delivery: none yet"
    detail = f"HTTP {last.status}" if last.ok or last.error is None else last.error
    return f"last delivery {'ok' if last.ok else 'failed'} at {format_time(last.at)}: {detail}"


@endpoints_group.command("remove")
@click.argument("endpoint_id")
@pass_app
def endpoints_remove(app: App, endpoint_id: str) -> None:
    """Delete an endpoint."""
    try:
        _store(app).remove(endpoint_id)
    except DeliveryError as exc:
        _fail_on(exc)
    click.echo(f"removed endpoint {endpoint_id}")


@endpoints_group.command("test")
@click.argument("endpoint_id")
@pass_app
def endpoints_test(app: App, endpoint_id: str) -> None:
    """Send webhook.test to the endpoint; exit 0 on a 2xx, else 1."""
    engine = app.engine()
    cipher = _cipher(app)
    try:
        record = asyncio.run(_send_test(app, engine, cipher, endpoint_id))
    except DeliveryError as exc:
        _fail_on(exc)
    took = f"{record.duration_s * 1000:.0f} ms"
    if record.ok:
        click.echo(
            f"test delivery {record.delivery_id} to {endpoint_id}: ok, HTTP {record.status} "
            f"in {took}"
        )
        return
    fail(
        f"test delivery {record.delivery_id} to {endpoint_id} failed after {took}: "
        f"{record.error or f'HTTP {record.status}'}",
        EXIT_FAILED,
    )


async def _send_test(
    app: App, engine: Any, cipher: SecretCipher, endpoint_id: str
) -> DeliveryRecord:
    dispatcher = Dispatcher(engine, app.settings.delivery, cipher=cipher)
    try:
        return await dispatcher.send_test(endpoint_id)
    finally:
        await dispatcher.aclose(_TEST_CLOSE_DEADLINE_S)
