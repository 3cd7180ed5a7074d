"""The outbox relay: what is handed to the dispatcher, when, and what is marked done."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from sqlalchemy import Engine

from scheduler.outbox import OutboxEvent, OutboxRelay


class FakePublisher:
    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.published: list[str] = []
        self.callbacks: dict[str, Callable[[], None]] = {}

    def publish(
        self,
        account_id: str,
        event_type: str,
        data: Mapping[str, Any],
        *,
        on_done: Callable[[], None] | None = None,
    ) -> bool:
        if not self.accept:
            return False
        self.published.append(data["key"])
        assert on_done is not None
        self.callbacks[data["key"]] = on_done
        return True


def _event(key: str) -> OutboxEvent:
    return OutboxEvent(key, "acc_a", key.split(":")[0], {"key": key})


@pytest.fixture
def sqlite_engine(tmp_path) -> Engine:  # type: ignore[no-untyped-def]
    from scheduler.db import make_engine

    return make_engine(f"sqlite:///{tmp_path / 'x.db'}")


def test_a_resolution_waits_until_its_creation_is_delivered(sqlite_engine: Engine) -> None:
    publisher = FakePublisher()
    relay = OutboxRelay(sqlite_engine, publisher)
    relay.send(
        [
            (1, _event("approval.created:a")),
            (2, _event("approval.resolved:a")),
            (3, _event("call.blocked:9")),
        ]
    )
    assert publisher.published == ["approval.created:a", "call.blocked:9"]
    publisher.callbacks["approval.created:a"]()
    assert publisher.published[-1] == "approval.resolved:a"
    assert relay.take_done() == [1]


def test_a_resolution_whose_creation_went_out_earlier_is_sent_at_once(
    sqlite_engine: Engine,
) -> None:
    publisher = FakePublisher()
    relay = OutboxRelay(sqlite_engine, publisher)
    relay.send([(2, _event("approval.resolved:b"))])
    assert publisher.published == ["approval.resolved:b"]


def test_an_event_the_dispatcher_refuses_stays_pending(sqlite_engine: Engine) -> None:
    publisher = FakePublisher(accept=False)
    relay = OutboxRelay(sqlite_engine, publisher)
    assert relay.send([(1, _event("call.blocked:1"))]) == 0
    assert relay.in_flight == 0
    publisher.accept = True
    assert relay.send([(1, _event("call.blocked:1"))]) == 1
    assert relay.send([(1, _event("call.blocked:1"))]) == 0  # already in flight: not twice


def test_a_stale_pending_read_does_not_resend_what_finished_meanwhile(
    sqlite_engine: Engine,
) -> None:
    publisher = FakePublisher()
    relay = OutboxRelay(sqlite_engine, publisher)
    relay.send([(1, _event("call.blocked:1"))])
    # A pending-rows read in a worker thread saw row 1 not done yet ...
    stale = [(1, _event("call.blocked:1"))]
    # ... then the delivery finished and was marked done before that read's result came back.
    publisher.callbacks["call.blocked:1"]()
    relay.forget(relay.take_done())
    assert relay.send(stale) == 0
    assert publisher.published == ["call.blocked:1"]
