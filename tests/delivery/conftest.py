"""Fixtures for the delivery tests: accounts, a store, a cipher and a real loopback receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from delivery import DeliveryConfig, EndpointStore, SecretCipher
from scheduler.db import make_engine, upgrade
from scheduler.schema import accounts
from tests.delivery.receiver import Receiver

AddAccount = Callable[[str, str], None]


@pytest.fixture
def cipher() -> SecretCipher:
    return SecretCipher(Fernet.generate_key())


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """For network behaviour, where the backend does not matter: SQLite only, to stay fast."""
    eng = make_engine(f"sqlite:///{tmp_path / 'delivery.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


def _account_adder(engine: Engine) -> AddAccount:
    def add(account_id: str, plan: str) -> None:
        with engine.begin() as conn:
            conn.execute(
                accounts.insert().values(
                    id=account_id, name=account_id, plan=plan, created_at=datetime.now(UTC)
                )
            )

    return add


@pytest.fixture
def add_account(engine: Engine) -> AddAccount:
    return _account_adder(engine)


@pytest.fixture
def add_sqlite_account(sqlite_engine: Engine) -> AddAccount:
    return _account_adder(sqlite_engine)


@pytest.fixture
def store(engine: Engine, cipher: SecretCipher) -> EndpointStore:
    return EndpointStore(engine, cipher, allow_insecure_localhost=True)


@pytest.fixture
def sqlite_store(sqlite_engine: Engine, cipher: SecretCipher) -> EndpointStore:
    return EndpointStore(sqlite_engine, cipher, allow_insecure_localhost=True)


@pytest.fixture
def fast_config() -> DeliveryConfig:
    """Short timeouts so hanging receivers cost the suite little time."""
    return DeliveryConfig(
        timeout_s=0.5,
        connect_timeout_s=0.5,
        allow_insecure_localhost=True,
        health_flush_interval_s=0.05,
        endpoints_refresh_s=60,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()
