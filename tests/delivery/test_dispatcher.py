"""The dispatcher against real HTTP receivers on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from delivery import (
    DeliveryConfig,
    DeliveryOutcome,
    DeliveryRecord,
    Dispatcher,
    EndpointStore,
    PlanNotAllowed,
    SecretCipher,
    payloads,
    verify,
)
from tests.delivery.conftest import AddAccount
from tests.delivery.receiver import Receiver, refused_url

T = TypeVar("T")
DATA = {"toolCallId": 1, "accountId": "acme", "reason": "blocked: «rm -rf» ✓"}


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def _dispatcher(
    engine: Engine, cipher: SecretCipher, config: DeliveryConfig, **kw: Any
) -> Dispatcher:
    return Dispatcher(engine, config, cipher=cipher, **kw)


async def _publish_and_drain(
    dispatcher: Dispatcher, *events: tuple[str, str], drain_s: float = 10
) -> None:
    await dispatcher.start()
    try:
        for account_id, event_type in events:
            assert dispatcher.publish(account_id, event_type, DATA)
        assert await dispatcher.drain(drain_s)
    finally:
        await dispatcher.aclose(1)


@pytest.fixture
def acme(add_sqlite_account: AddAccount) -> str:
    add_sqlite_account("acme", "pro")
    return "acme"


def _last(store: EndpointStore, endpoint_id: str) -> Any:
    last = store.get(endpoint_id).last_delivery
    assert last is not None
    return last


def test_2xx_is_delivered_signed_per_the_contract_and_recorded_ok(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    created = sqlite_store.add(acme, receiver.url("/ok"))
    run(_publish_and_drain(_dispatcher(sqlite_engine, cipher, fast_config), (acme, "call.blocked")))
    [req] = receiver.received()
    verify(created.secret, req.headers, req.body)
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-enforgate-event"] == "call.blocked"
    assert req.headers["x-enforgate-delivery"].startswith("dlv_")
    assert req.headers["user-agent"].startswith("enforgate-webhooks/")
    body = json.loads(req.body.decode("utf-8"))
    assert body["event"] == "call.blocked"
    assert body["data"] == DATA
    assert body["sentAt"].endswith("Z")
    last = _last(sqlite_store, created.endpoint.id)
    assert (last.ok, last.status, last.error) == (True, 204, None)
    [entry] = sqlite_store.log(created.endpoint.id)
    assert entry.delivery_id == req.headers["x-enforgate-delivery"]
    assert entry.outcome == "ok"


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_4xx_and_5xx_are_recorded_as_failed_with_the_status(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
    status: int,
) -> None:
    endpoint_id = sqlite_store.add(acme, receiver.url(f"/status/{status}")).endpoint.id
    run(_publish_and_drain(_dispatcher(sqlite_engine, cipher, fast_config), (acme, "call.blocked")))
    last = _last(sqlite_store, endpoint_id)
    assert (last.ok, last.status, last.outcome) == (False, status, "http_error")
    assert f"HTTP {status}" in last.error


def test_receiver_hanging_past_the_timeout_is_recorded_as_timeout(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    endpoint_id = sqlite_store.add(acme, receiver.url("/hang")).endpoint.id
    records: list[DeliveryRecord] = []
    dispatcher = _dispatcher(sqlite_engine, cipher, fast_config, observer=records.append)
    run(_publish_and_drain(dispatcher, (acme, "call.blocked")))
    [record] = records
    assert record.outcome is DeliveryOutcome.TIMEOUT
    assert 0.4 < record.duration_s < 5
    last = _last(sqlite_store, endpoint_id)
    assert (last.ok, last.status, last.outcome) == (False, None, "timeout")
    assert last.error.startswith(("ReadTimeout: ", "TimeoutError: "))


def test_connection_refused_is_recorded_as_a_connect_error(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    acme: str,
) -> None:
    endpoint_id = sqlite_store.add(acme, refused_url()).endpoint.id
    run(_publish_and_drain(_dispatcher(sqlite_engine, cipher, fast_config), (acme, "call.blocked")))
    last = _last(sqlite_store, endpoint_id)
    assert (last.ok, last.status, last.outcome) == (False, None, "connect_error")
    assert last.error.startswith("ConnectionRefusedError: ")


def test_redirect_is_not_followed_and_counts_as_failed(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    endpoint_id = sqlite_store.add(acme, receiver.url("/redirect")).endpoint.id
    run(_publish_and_drain(_dispatcher(sqlite_engine, cipher, fast_config), (acme, "call.blocked")))
    assert [r.path for r in receiver.received()] == ["/redirect"]
    last = _last(sqlite_store, endpoint_id)
    assert (last.ok, last.status, last.outcome) == (False, 302, "redirect")


def test_huge_response_body_is_not_read_in_full(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    endpoint_id = sqlite_store.add(acme, receiver.url("/huge")).endpoint.id
    records: list[DeliveryRecord] = []
    config = fast_config.model_copy(update={"timeout_s": 5.0})
    dispatcher = _dispatcher(sqlite_engine, cipher, config, observer=records.append)
    run(_publish_and_drain(dispatcher, (acme, "call.blocked")))
    [record] = records
    assert (record.ok, record.status) == (True, 200)
    # 20 MiB over loopback at a trickle would take far longer than reading 64 KiB does.
    assert record.duration_s < 2
    assert _last(sqlite_store, endpoint_id).ok


def test_hanging_endpoint_does_not_delay_others(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    sqlite_store.add(acme, receiver.url("/hang"))
    sqlite_store.add(acme, receiver.url("/fast"))
    config = fast_config.model_copy(update={"timeout_s": 3.0})

    async def scenario() -> float:
        dispatcher = _dispatcher(sqlite_engine, cipher, config)
        await dispatcher.start()
        started = time.monotonic()
        for _ in range(50):
            dispatcher.publish(acme, "call.blocked", DATA)
        while len(receiver.received("/fast")) < 50 and time.monotonic() - started < 10:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # the receiver is another thread: polling is simplest
        took = time.monotonic() - started
        await dispatcher.aclose(0.1)
        return took

    took = run(scenario())
    assert len(receiver.received("/fast")) == 50
    assert took < 2.0  # all 50 arrived while the hanging endpoint still held its slots


def test_slow_endpoint_does_not_delay_a_fast_one(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    receiver.slow_s = 1.0
    sqlite_store.add(acme, receiver.url("/slow"))
    sqlite_store.add(acme, receiver.url("/fast"))
    config = fast_config.model_copy(update={"timeout_s": 5.0})

    async def scenario() -> None:
        dispatcher = _dispatcher(sqlite_engine, cipher, config)
        await dispatcher.start()
        for _ in range(8):
            dispatcher.publish(acme, "call.blocked", DATA)
        await asyncio.sleep(0.5)
        # The slow endpoint has answered nothing yet; the fast one has everything.
        assert len(receiver.received("/fast")) == 8
        assert await dispatcher.drain(15)
        await dispatcher.aclose(1)

    run(scenario())
    assert len(receiver.received("/slow")) == 8


def test_publish_returns_at_once_while_every_receiver_hangs(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    for _ in range(3):
        sqlite_store.add(acme, receiver.url("/hang"))
    config = fast_config.model_copy(update={"timeout_s": 5.0})

    async def scenario() -> list[float]:
        dispatcher = _dispatcher(sqlite_engine, cipher, config)
        await dispatcher.start()
        times = []
        for _ in range(200):
            started = time.perf_counter()
            assert dispatcher.publish(acme, "call.blocked", DATA)
            times.append(time.perf_counter() - started)
            await asyncio.sleep(0)  # let the dispatcher fan out and the requests hang
        await asyncio.sleep(0.3)
        assert dispatcher.in_flight > 0
        await dispatcher.aclose(0.1)
        return times

    # Far below the 5 s the receivers hang: publishing never waits for them (and a slow or
    # busy machine cannot fail this).
    assert max(run(scenario())) < 0.5


def test_a_full_queue_drops_and_counts_without_waiting(
    sqlite_engine: Engine, cipher: SecretCipher, fast_config: DeliveryConfig
) -> None:
    config = fast_config.model_copy(update={"queue_size": 5})
    dispatcher = _dispatcher(sqlite_engine, cipher, config)  # not started: nothing drains
    results = [dispatcher.publish("acme", "call.blocked", DATA) for _ in range(8)]
    assert results == [True] * 5 + [False] * 3
    assert (dispatcher.dropped, dispatcher.queue_depth) == (3, 5)


def test_publish_never_raises_on_bad_input(
    sqlite_engine: Engine, cipher: SecretCipher, fast_config: DeliveryConfig
) -> None:
    dispatcher = _dispatcher(sqlite_engine, cipher, fast_config)
    assert dispatcher.publish("acme", "no.such.event", DATA) is False
    assert dispatcher.publish("acme", "call.blocked", None) is False  # type: ignore[arg-type]
    assert dispatcher.dropped == 2


def test_events_of_one_account_never_reach_another_accounts_endpoints(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    add_sqlite_account: AddAccount,
) -> None:
    add_sqlite_account("acc_a", "pro")
    add_sqlite_account("acc_b", "scale")
    sqlite_store.add("acc_a", receiver.url("/a"))
    sqlite_store.add("acc_b", receiver.url("/b"))
    dispatcher = _dispatcher(sqlite_engine, cipher, fast_config)
    run(_publish_and_drain(dispatcher, *[("acc_a", "call.blocked")] * 5))
    assert [r.path for r in receiver.received()] == ["/a"] * 5


def test_endpoints_of_a_free_account_receive_nothing(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    endpoint_id = sqlite_store.add(acme, receiver.url("/ok")).endpoint.id
    with sqlite_engine.begin() as conn:  # downgraded after the endpoint was made
        conn.execute(sa.text("UPDATE accounts SET plan = 'free' WHERE id = 'acme'"))
    dispatcher = _dispatcher(sqlite_engine, cipher, fast_config)
    run(_publish_and_drain(dispatcher, (acme, "call.blocked")))
    assert receiver.received() == []
    with pytest.raises(PlanNotAllowed):
        run(_dispatcher(sqlite_engine, cipher, fast_config).send_test(endpoint_id))


def test_only_subscribed_events_are_delivered(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    sqlite_store.add(acme, receiver.url("/ok"), ["anomaly.detected"])
    dispatcher = _dispatcher(sqlite_engine, cipher, fast_config)
    run(_publish_and_drain(dispatcher, (acme, "call.blocked"), (acme, "anomaly.detected")))
    assert [r.headers["x-enforgate-event"] for r in receiver.received()] == ["anomaly.detected"]


def test_each_endpoint_gets_its_own_signature_and_delivery_id(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    one = sqlite_store.add(acme, receiver.url("/one")).secret
    two = sqlite_store.add(acme, receiver.url("/two")).secret
    run(_publish_and_drain(_dispatcher(sqlite_engine, cipher, fast_config), (acme, "call.blocked")))
    [r1] = receiver.received("/one")
    [r2] = receiver.received("/two")
    verify(one, r1.headers, r1.body)
    verify(two, r2.headers, r2.body)
    assert r1.body == r2.body  # the event is built once
    assert r1.headers["x-enforgate-delivery"] != r2.headers["x-enforgate-delivery"]


def test_publish_from_another_thread_is_delivered(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    sqlite_store.add(acme, receiver.url("/ok"))

    async def scenario() -> None:
        dispatcher = _dispatcher(sqlite_engine, cipher, fast_config)
        await dispatcher.start()
        results: list[bool] = []
        worker = threading.Thread(
            target=lambda: results.extend(
                dispatcher.publish(acme, "call.blocked", DATA) for _ in range(10)
            )
        )
        worker.start()
        await asyncio.to_thread(worker.join)
        assert results == [True] * 10
        assert await dispatcher.drain(10)
        await dispatcher.aclose(1)

    run(scenario())
    assert len(receiver.received()) == 10


def test_an_observer_that_raises_does_not_stop_delivery_or_recording(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    endpoint_id = sqlite_store.add(acme, receiver.url("/ok")).endpoint.id

    def observer(record: DeliveryRecord) -> None:
        raise RuntimeError("metrics are down")

    dispatcher = _dispatcher(sqlite_engine, cipher, fast_config, observer=observer)
    run(_publish_and_drain(dispatcher, (acme, "call.blocked"), (acme, "call.blocked")))
    assert len(receiver.received()) == 2
    assert len(sqlite_store.log(endpoint_id)) == 2


def test_on_done_is_called_once_every_attempt_is_over(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    sqlite_store.add(acme, receiver.url("/ok"))
    sqlite_store.add(acme, receiver.url("/status/500"))
    done: list[str] = []

    async def scenario() -> None:
        dispatcher = _dispatcher(sqlite_engine, cipher, fast_config)
        await dispatcher.start()
        dispatcher.publish(acme, "call.blocked", DATA, on_done=lambda: done.append("sent"))
        dispatcher.publish("nobody", "call.blocked", DATA, on_done=lambda: done.append("none"))
        assert await dispatcher.drain(10)
        await dispatcher.aclose(1)

    run(scenario())
    assert sorted(done) == ["none", "sent"]


def test_send_test_sends_webhook_test_whatever_the_subscription_and_records_it(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    created = sqlite_store.add(acme, receiver.url("/ok"), ["call.blocked"])
    endpoint_id = created.endpoint.id

    async def scenario() -> DeliveryRecord:
        dispatcher = _dispatcher(sqlite_engine, cipher, fast_config)
        try:
            return await dispatcher.send_test(endpoint_id)
        finally:
            await dispatcher.aclose(1)

    record = run(scenario())
    assert (record.ok, record.status, record.event_type) == (True, 204, payloads.WEBHOOK_TEST)
    [req] = receiver.received()
    verify(created.secret, req.headers, req.body)
    data = json.loads(req.body)["data"]
    assert (data["endpointId"], data["accountId"]) == (endpoint_id, acme)
    assert data["message"]
    assert _last(sqlite_store, endpoint_id).delivery_id == record.delivery_id


def test_aclose_returns_within_its_deadline_with_a_hanging_receiver(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    sqlite_store.add(acme, receiver.url("/hang"))
    config = fast_config.model_copy(update={"timeout_s": 30.0})

    async def scenario() -> float:
        dispatcher = _dispatcher(sqlite_engine, cipher, config)
        await dispatcher.start()
        dispatcher.publish(acme, "call.blocked", DATA)
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await dispatcher.aclose(0.5)
        assert dispatcher.publish(acme, "call.blocked", DATA) is False
        return time.monotonic() - started

    assert run(scenario()) < 3


def test_outcomes_are_recorded_on_both_backends(
    engine: Engine,
    store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    add_account: AddAccount,
) -> None:
    add_account("acme", "pro")
    ok_id = store.add("acme", receiver.url("/ok")).endpoint.id
    bad_id = store.add("acme", refused_url()).endpoint.id
    run(_publish_and_drain(_dispatcher(engine, cipher, fast_config), ("acme", "call.blocked")))
    assert _last(store, ok_id).ok is True
    bad = _last(store, bad_id)
    assert (bad.ok, bad.outcome) == (False, "connect_error")
    assert [len(store.log(i)) for i in (ok_id, bad_id)] == [1, 1]


def test_deliveries_beyond_an_endpoints_backlog_are_recorded_as_dropped(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    sqlite_store.add(acme, receiver.url("/hang"))
    config = fast_config.model_copy(
        update={"per_endpoint_concurrency": 1, "per_endpoint_backlog": 2, "timeout_s": 0.3}
    )
    records: list[DeliveryRecord] = []
    dispatcher = _dispatcher(sqlite_engine, cipher, config, observer=records.append)
    run(_publish_and_drain(dispatcher, *[(acme, "call.blocked")] * 5))
    outcomes = sorted(r.outcome.value for r in records)
    # All five fan out before the endpoint's worker starts: two fit its backlog, three do not.
    assert outcomes == ["dropped", "dropped", "dropped", "timeout", "timeout"]
    assert dispatcher.dropped == 0  # the events themselves were all accepted


def test_an_event_that_cannot_be_encoded_is_dropped_and_reported_done(
    sqlite_engine: Engine,
    sqlite_store: EndpointStore,
    cipher: SecretCipher,
    fast_config: DeliveryConfig,
    receiver: Receiver,
    acme: str,
) -> None:
    sqlite_store.add(acme, receiver.url("/ok"))
    done: list[bool] = []

    async def scenario() -> None:
        dispatcher = _dispatcher(sqlite_engine, cipher, fast_config)
        await dispatcher.start()
        assert dispatcher.publish(
            acme, "call.blocked", {"x": object()}, on_done=lambda: done.append(True)
        )
        assert await dispatcher.drain(5)
        await dispatcher.aclose(1)

    run(scenario())
    assert done == [True]
    assert receiver.received() == []
