"""What every command shares: the settings, the database, output and exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

import click
from sqlalchemy import Engine

from delivery import format_time

from ..config import LoadedSettings, Settings, load_settings
from ..db import make_engine, upgrade
from ..exceptions import ConfigError, StorageError

# The contract's exit codes.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class BadInput(click.ClickException):
    """Bad usage, bad input or bad config: printed as ``error: ...``, exit 2."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class OperationFailed(click.ClickException):
    """The operation was valid but did not succeed: exit 1."""

    exit_code = EXIT_FAILED

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@dataclass
class App:
    """Lazily loaded state of one command-line invocation."""

    config_path: str | None
    _loaded: LoadedSettings | None = None
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def loaded(self) -> LoadedSettings:
        if self._loaded is None:
            try:
                self._loaded = load_settings(self.config_path)
            except ConfigError as exc:
                raise BadInput(str(exc)) from None
        return self._loaded

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    def engine(self, *, migrate: bool = True) -> Engine:
        """The database engine, migrated to the latest schema unless told otherwise."""
        if self._engine is None:
            engine = make_engine(self.settings.database.url)
            if migrate:
                try:
                    upgrade(engine)
                except StorageError as exc:
                    engine.dispose()
                    raise OperationFailed(str(exc)) from None
            self._engine = engine
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


pass_app = click.make_pass_decorator(App)


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout (the only thing a --json command prints there)."""
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2, default=_json_default)
    sys.stdout.write("\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def parse_time(value: str, option: str) -> datetime:
    """An ISO 8601 date or date-time from the command line; UTC unless it names a zone."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"{option} {value!r}: not an ISO 8601 date or time "
            "(e.g. 2026-06-19 or 2026-06-19T12:00:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Stop the command with ``error: message`` and the given exit code."""
    if code == EXIT_FAILED:
        raise OperationFailed(message)
    raise BadInput(message)


@contextmanager
def closing_app(app: App) -> Iterator[App]:
    try:
        yield app
    finally:
        app.close()
