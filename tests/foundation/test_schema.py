from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from scheduler.schema import all_metadata
from tests.conftest import BACKENDS  # noqa: F401  (documents that `engine` runs on both)


def test_migrations_create_the_contract_tables(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {"accounts", "activity_log", "approvals"} <= tables


def test_migrations_match_the_declared_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), all_metadata())
    assert diff == []


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from scheduler.db import make_engine, upgrade

    eng = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(eng)
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    eng.dispose()
