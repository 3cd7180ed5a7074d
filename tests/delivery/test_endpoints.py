"""The endpoint store on SQLite and PostgreSQL: create, list, remove, plans, secrets at rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from delivery import (
    EVENT_TYPES,
    DeliveryOutcome,
    DeliveryRecord,
    EndpointStore,
    InvalidUrl,
    PlanNotAllowed,
    UnknownAccount,
    UnknownEndpoint,
    UnknownEvent,
    metadata,
    validate_events,
    validate_url,
)
from tests.delivery.conftest import AddAccount

URL = "https://hooks.example.com/enforgate"


def _record(endpoint_id: str, at: datetime, ok: bool, **kw: object) -> DeliveryRecord:
    fields: dict[str, object] = {
        "delivery_id": f"dlv_{at.timestamp()}",
        "endpoint_id": endpoint_id,
        "account_id": "acme",
        "event_type": "call.blocked",
        "at": at,
        "duration_s": 0.01,
        "outcome": DeliveryOutcome.OK if ok else DeliveryOutcome.HTTP_ERROR,
        "ok": ok,
        "status": 200 if ok else 500,
        "error": None if ok else "HTTPStatus: HTTP 500",
    }
    fields.update(kw)
    return DeliveryRecord(**fields)  # type: ignore[arg-type]


def test_add_returns_the_secret_once_and_lists_only_the_hint(
    store: EndpointStore, add_account: AddAccount
) -> None:
    add_account("acme", "pro")
    created = store.add("acme", URL)
    assert created.secret.startswith("whsec_")
    assert created.endpoint.hint == "whsec_…" + created.secret[-4:]
    [listed] = store.list()
    assert listed == created.endpoint
    assert created.secret not in repr(listed)


def test_add_subscribes_to_all_four_events_by_default(
    store: EndpointStore, add_account: AddAccount
) -> None:
    add_account("acme", "scale")
    assert store.add("acme", URL).endpoint.events == EVENT_TYPES


def test_add_keeps_a_subset_of_events_in_contract_order(
    store: EndpointStore, add_account: AddAccount
) -> None:
    add_account("acme", "pro")
    created = store.add("acme", URL, ["anomaly.detected", "call.blocked"])
    assert store.get(created.endpoint.id).events == ("call.blocked", "anomaly.detected")


def test_an_account_may_have_several_endpoints(
    store: EndpointStore, add_account: AddAccount
) -> None:
    add_account("acme", "pro")
    add_account("globex", "pro")
    first = store.add("acme", URL).endpoint.id
    second = store.add("acme", URL + "/2").endpoint.id
    store.add("globex", URL)
    assert [e.id for e in store.list("acme")] == [first, second]
    assert len(store.list()) == 3


def test_free_account_is_refused(store: EndpointStore, add_account: AddAccount) -> None:
    add_account("cheap", "free")
    with pytest.raises(PlanNotAllowed, match="Webhooks are a Pro and Scale feature"):
        store.add("cheap", URL)
    assert store.list() == []


def test_unknown_account_is_refused(store: EndpointStore) -> None:
    with pytest.raises(UnknownAccount, match="'ghost'"):
        store.add("ghost", URL)


def test_remove_deletes_the_endpoint(store: EndpointStore, add_account: AddAccount) -> None:
    add_account("acme", "pro")
    endpoint_id = store.add("acme", URL).endpoint.id
    store.remove(endpoint_id)
    assert store.list() == []


@pytest.mark.parametrize("action", ["get", "remove", "target"])
def test_unknown_endpoint_id_is_an_error(store: EndpointStore, action: str) -> None:
    with pytest.raises(UnknownEndpoint, match="'ep_nope'"):
        getattr(store, action)("ep_nope")


def test_targets_hold_the_decrypted_secret_for_paying_accounts_only(
    store: EndpointStore, add_account: AddAccount, engine: Engine
) -> None:
    add_account("acme", "pro")
    created = store.add("acme", URL)
    [target] = store.targets()
    assert target.secret == created.secret
    assert created.secret not in repr(target)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE accounts SET plan = 'free' WHERE id = 'acme'"))
    assert store.targets() == []
    with pytest.raises(PlanNotAllowed):
        store.target(created.endpoint.id)


def test_no_secret_appears_in_plain_text_in_the_database(
    store: EndpointStore, add_account: AddAccount, engine: Engine, tmp_path: Path
) -> None:
    add_account("acme", "pro")
    secrets = [store.add("acme", URL).secret for _ in range(3)]
    # Every byte of the SQLite files, or every row of every PostgreSQL table.
    if engine.dialect.name == "sqlite":
        dump = b"".join(p.read_bytes() for p in tmp_path.glob("enforgate.db*"))
    else:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            rows = [
                conn.execute(sa.select(sa.text("*")).select_from(sa.table(t))).all() for t in tables
            ]
        dump = repr(rows).encode()
    assert b"whsec_" in dump  # the hints are there, so the search really covers the rows
    for secret in secrets:
        assert secret.encode() not in dump
        assert secret.removeprefix("whsec_")[:20].encode() not in dump


def test_record_updates_the_last_delivery_and_appends_to_the_log(
    store: EndpointStore, add_account: AddAccount
) -> None:
    add_account("acme", "pro")
    endpoint_id = store.add("acme", URL).endpoint.id
    t0 = datetime(2026, 6, 19, 12, tzinfo=UTC)
    store.record([_record(endpoint_id, t0, True), _record(endpoint_id, t0 + timedelta(1), False)])
    last = store.get(endpoint_id).last_delivery
    assert last is not None
    assert (last.at, last.ok, last.status) == (t0 + timedelta(1), False, 500)
    assert last.error == "HTTPStatus: HTTP 500"
    assert [e.ok for e in store.log(endpoint_id)] == [False, True]


def test_an_older_record_does_not_overwrite_a_newer_last_delivery(
    store: EndpointStore, add_account: AddAccount
) -> None:
    add_account("acme", "pro")
    endpoint_id = store.add("acme", URL).endpoint.id
    t0 = datetime(2026, 6, 19, 12, tzinfo=UTC)
    store.record([_record(endpoint_id, t0, False)])
    store.record([_record(endpoint_id, t0 - timedelta(seconds=1), True)])
    last = store.get(endpoint_id).last_delivery
    assert last is not None
    assert last.ok is False


def test_connection_errors_are_stored_as_text(
    store: EndpointStore, add_account: AddAccount
) -> None:
    add_account("acme", "pro")
    endpoint_id = store.add("acme", URL).endpoint.id
    error = "ConnectError: [Errno 111] Connection refused"
    rec = _record(
        endpoint_id,
        datetime.now(UTC),
        False,
        outcome=DeliveryOutcome.CONNECT_ERROR,
        status=None,
        error=error,
    )
    store.record([rec])
    last = store.get(endpoint_id).last_delivery
    assert last is not None
    assert (last.status, last.error, last.outcome) == (None, error, "connect_error")


def test_prune_log_removes_entries_older_than_the_cutoff(
    store: EndpointStore, add_account: AddAccount
) -> None:
    add_account("acme", "pro")
    endpoint_id = store.add("acme", URL).endpoint.id
    now = datetime(2026, 6, 19, 12, tzinfo=UTC)
    store.record(
        [_record(endpoint_id, now - timedelta(days=10), True), _record(endpoint_id, now, True)]
    )
    assert store.prune_log(now - timedelta(days=7)) == 1
    assert [e.at for e in store.log(endpoint_id)] == [now]


def test_delivery_tables_are_on_the_delivery_metadata() -> None:
    assert {"webhook_endpoints", "webhook_deliveries"} == set(metadata.tables)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/x",
        "https://hooks.example.com:8443/x?y=1",
        "http://localhost:8080/hook",
        "http://127.0.0.1/hook",
        "http://[::1]:9000/hook",
    ],
)
def test_valid_urls_are_accepted_with_insecure_localhost(url: str) -> None:
    assert validate_url(url, allow_insecure_localhost=True) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "http://10.0.0.1/x",
        "ftp://hooks.example.com/x",
        "hooks.example.com/x",
        "https://",
        "https://user:pw@hooks.example.com/x",
        "https://hooks.example.com:99999/x",
        "https://hooks.example.com/a b",
        "",
    ],
)
def test_invalid_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidUrl):
        validate_url(url, allow_insecure_localhost=True)


def test_http_localhost_is_refused_unless_allowed() -> None:
    with pytest.raises(InvalidUrl, match="allow_insecure_localhost"):
        validate_url("http://localhost:8080/hook", allow_insecure_localhost=False)


def test_unknown_event_is_refused_listing_the_valid_ones() -> None:
    with pytest.raises(UnknownEvent, match=r"'call\.blokd'.*call\.blocked, approval\.created"):
        validate_events(["call.blokd"])


def test_webhook_test_is_not_a_subscribable_event() -> None:
    with pytest.raises(UnknownEvent):
        validate_events(["webhook.test"])


def test_an_empty_event_list_is_refused() -> None:
    with pytest.raises(UnknownEvent, match="no events"):
        validate_events([])


def test_an_endpoint_whose_secret_cannot_be_decrypted_is_skipped_not_fatal(
    engine: Engine, add_account: AddAccount, cipher: object
) -> None:
    from cryptography.fernet import Fernet

    from delivery import SecretCipher

    add_account("acme", "pro")
    old = EndpointStore(engine, SecretCipher(Fernet.generate_key()))
    new = EndpointStore(engine, cipher)  # type: ignore[arg-type]
    old.add("acme", URL)
    kept = new.add("acme", URL).endpoint.id
    assert [t.endpoint_id for t in new.targets()] == [kept]
