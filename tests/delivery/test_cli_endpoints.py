"""`endpoints add|list|remove|test` through the real command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from delivery import verify
from scheduler.schema import accounts
from tests.cli_runner import run_cli
from tests.delivery.receiver import Receiver


def _config(tmp_path: Path, database_url: str, engine: Engine) -> Path:
    with engine.begin() as conn:
        for account_id, plan in (("acme", "pro"), ("cheap", "free")):
            conn.execute(
                accounts.insert().values(
                    id=account_id, name=account_id, plan=plan, created_at=datetime.now(UTC)
                )
            )
    path = tmp_path / "enforgate.toml"
    path.write_text(
        f'[database]\nurl = "{database_url}"\n'
        f"[delivery]\nallow_insecure_localhost = true\ntimeout_s = 2\n"
        f'secret_key_file = "{tmp_path / "enforgate.key"}"\n'
    )
    return path


@pytest.fixture
def config(tmp_path: Path, database_url: str, engine: Engine) -> Path:
    """A config on the migrated test database (both backends), with two accounts."""
    return _config(tmp_path, database_url, engine)


@pytest.fixture
def sqlite_config(tmp_path: Path, sqlite_engine: Engine) -> Path:
    """The same on SQLite only, for what the backend cannot change (input checks, output)."""
    return _config(tmp_path, str(sqlite_engine.url), sqlite_engine)


def cli(config: Path, *args: str) -> Any:
    return run_cli("--config", str(config), "endpoints", *args, cwd=config.parent)


def test_add_test_list_then_receiver_stops_and_list_shows_the_failure(
    config: Path, tmp_path: Path
) -> None:
    receiver = Receiver()
    try:
        added = cli(config, "add", "--account", "acme", "--url", receiver.url("/hook"), "--json")
        assert added.returncode == 0, added.stderr
        created = json.loads(added.stdout)
        assert set(created) == {"id", "accountId", "url", "events", "secret", "hint"}
        assert created["events"] == [
            "call.blocked",
            "approval.created",
            "approval.resolved",
            "anomaly.detected",
        ]
        endpoint_id, secret = created["id"], created["secret"]

        tested = cli(config, "test", endpoint_id)
        assert tested.returncode == 0, tested.stderr
        assert "ok" in tested.stdout
        [request] = receiver.received()
        verify(secret, request.headers, request.body)
        assert json.loads(request.body)["event"] == "webhook.test"

        listed = cli(config, "list")
        assert listed.returncode == 0, listed.stderr
        assert "last delivery ok" in listed.stdout
        assert secret not in listed.stdout
        assert created["hint"] in listed.stdout
    finally:
        receiver.stop()

    failed = cli(config, "test", endpoint_id)
    assert failed.returncode == 1
    assert "ConnectionRefusedError" in failed.stderr

    listed = cli(config, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [endpoint] = json.loads(listed.stdout)["endpoints"]
    assert set(endpoint) == {"id", "accountId", "url", "events", "hint", "lastDelivery"}
    last = endpoint["lastDelivery"]
    assert set(last) == {"at", "ok", "status", "error"}
    assert (last["ok"], last["status"]) == (False, None)
    assert last["error"].startswith("ConnectionRefusedError")
    assert last["at"].endswith("Z")
    text = cli(config, "list").stdout
    assert "last delivery failed" in text
    assert "ConnectionRefusedError" in text
    assert secret not in listed.stdout + text


def test_add_prints_the_secret_once_in_text(sqlite_config: Path) -> None:
    added = cli(sqlite_config, "add", "--account", "acme", "--url", "https://hooks.example.com/x")
    assert added.returncode == 0, added.stderr
    assert "whsec_" in added.stdout
    assert "only this once" in added.stdout


def test_add_with_events_subscribes_to_those(sqlite_config: Path) -> None:
    added = cli(
        sqlite_config,
        "add",
        "--account",
        "acme",
        "--url",
        "https://hooks.example.com/x",
        "--events",
        "anomaly.detected,call.blocked",
        "--json",
    )
    assert json.loads(added.stdout)["events"] == ["call.blocked", "anomaly.detected"]


def test_list_filters_by_account_and_json_is_one_document(config: Path) -> None:
    cli(config, "add", "--account", "acme", "--url", "https://hooks.example.com/x")
    mine = json.loads(cli(config, "list", "--account", "acme", "--json").stdout)
    others = json.loads(cli(config, "list", "--account", "globex", "--json").stdout)
    assert len(mine["endpoints"]) == 1
    assert mine["endpoints"][0]["lastDelivery"] is None
    assert others == {"endpoints": []}


def test_remove_deletes_the_endpoint(config: Path) -> None:
    added = cli(config, "add", "--account", "acme", "--url", "https://h.example.com/", "--json")
    endpoint_id = json.loads(added.stdout)["id"]
    removed = cli(config, "remove", endpoint_id)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(cli(config, "list", "--json").stdout) == {"endpoints": []}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--account", "acme", "--url", "http://hooks.example.com/x"], "https://"),
        (["add", "--account", "acme", "--url", "not a url"], "URL"),
        (
            ["add", "--account", "acme", "--url", "https://h.example.com/", "--events", "nope"],
            "valid events: call.blocked, approval.created, approval.resolved, anomaly.detected",
        ),
        (
            ["add", "--account", "cheap", "--url", "https://h.example.com/"],
            "Webhooks are a Pro and Scale feature",
        ),
        (["add", "--account", "ghost", "--url", "https://h.example.com/"], "'ghost' not found"),
        (["remove", "ep_nope"], "endpoint 'ep_nope' not found"),
        (["test", "ep_nope"], "endpoint 'ep_nope' not found"),
    ],
)
def test_bad_input_is_a_clear_message_and_exit_2(
    sqlite_config: Path, args: list[str], message: str
) -> None:
    result = cli(sqlite_config, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stdout == ""
