"""The in-process hook of a Python gateway: returns at once, never raises, sends once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from delivery import EndpointStore, load_cipher, verify
from scheduler.config import LoadedSettings, Settings
from scheduler.daemon import Daemon
from tests.gateway import activity_row, add_account, log_calls
from tests.receiver import Receiver, run_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with run_receiver() as r:
        yield r


@pytest.fixture
def secret(engine: Engine, tmp_path: Path, receiver: Receiver) -> str:
    add_account(engine, "acc_a")
    store = EndpointStore(engine, load_cipher(tmp_path / "k"), allow_insecure_localhost=True)
    return store.add("acc_a", receiver.url).secret


@pytest.fixture
def daemon(engine: Engine, database_url: str, tmp_path: Path, secret: str) -> Iterator[Daemon]:
    """A daemon embedded in another thread, as a gateway would run it."""
    settings = Settings.model_validate(
        {
            "database": {"url": database_url},
            "delivery": {
                "secret_key_file": str(tmp_path / "k"),
                "allow_insecure_localhost": True,
                "timeout_s": 2,
            },
            "scheduler": {"tail_interval_s": 0.2, "shutdown_deadline_s": 1},
            "detectors": {
                n: {"enabled": False} for n in ("call_spike", "block_rate_jump", "new_tool")
            },
            "metrics": {"enabled": False},
        }
    )
    d = Daemon(LoadedSettings(settings, "test", ()), engine)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(d.serve(handle_signals=False)), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not d.started.is_set():
        assert time.monotonic() < deadline, "daemon did not start"
        time.sleep(0.02)
    yield d
    d.request_stop()
    thread.join(20)
    loop.close()


def _block(d: Daemon, tool_call_id: int, **extra: object) -> float:
    started = time.perf_counter()
    d.hooks.call_blocked(
        tool_call_id=tool_call_id,
        account_id="acc_a",
        server="github",
        tool="delete_repo",
        args_hash="cd" * 32,
        reason="blocked by policy",
        **extra,  # type: ignore[arg-type]
    )
    return time.perf_counter() - started


def test_a_blocked_call_reported_by_the_hook_arrives_signed(
    daemon: Daemon, receiver: Receiver, secret: str
) -> None:
    _block(daemon, 41)
    got = receiver.wait_for(lambda got: len(got) == 1)
    verify(secret, got[0].headers, got[0].body)
    assert got[0].json["data"]["toolCallId"] == 41


def test_the_hook_returns_at_once_while_the_receiver_hangs(
    daemon: Daemon, receiver: Receiver
) -> None:
    receiver.delay_s = 5
    durations = [_block(daemon, 100 + i) for i in range(200)]
    assert max(durations) < 0.5  # far below the 5 s hang; generous for a busy machine


def test_the_hook_never_raises_into_the_gateway(daemon: Daemon, receiver: Receiver) -> None:
    # A naive time cannot be rendered: the event is dropped and counted, the caller unharmed.
    _block(daemon, 7, occurred_at=datetime(2026, 1, 1))
    daemon.hooks.approval_created(  # type: ignore[call-arg]
        approval_id="apr_x",
        tool_call_id=1,
        account_id="acc_a",
        server="s",
        tool="t",
        args_hash="00",
        expires_at=None,
    )
    assert daemon.metrics.hook_dropped._value.get() == 2


def test_a_deny_seen_by_both_the_hook_and_the_tail_goes_out_once(
    daemon: Daemon, engine: Engine, receiver: Receiver
) -> None:
    ids = log_calls(engine, [activity_row("acc_a", decision="deny")])
    _block(daemon, ids[0])
    receiver.wait_for(lambda got: len(got) >= 1)
    time.sleep(1.0)  # several tail polls later
    assert [r.json["data"]["toolCallId"] for r in receiver.events()] == ids


def test_the_hook_works_from_many_threads(daemon: Daemon, receiver: Receiver) -> None:
    threads = [
        threading.Thread(target=lambda n=n: [_block(daemon, 1000 * n + i) for i in range(20)])
        for n in range(1, 5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = receiver.wait_for(lambda got: len(got) == 80)
    assert len({r.json["data"]["toolCallId"] for r in got}) == 80
