"""The daemon that connects the detectors and the dispatcher to the database, the clock and the
signals; and the ``enforgate-webhooks`` command line.

``Daemon`` and ``Hooks`` are imported on first use: the command line's quick commands should not
pay for the scheduler, pandas and the HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import LoadedSettings, Settings, load_settings
from .db import make_engine, upgrade
from .exceptions import ConfigError, EnforgateError, MalformedRowError, StorageError

if TYPE_CHECKING:
    from .daemon import Daemon
    from .hooks import Hooks

__all__ = [
    "ConfigError",
    "Daemon",
    "EnforgateError",
    "Hooks",
    "LoadedSettings",
    "MalformedRowError",
    "Settings",
    "StorageError",
    "load_settings",
    "make_engine",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    if name == "Daemon":
        from .daemon import Daemon

        return Daemon
    if name == "Hooks":
        from .hooks import Hooks

        return Hooks
    raise AttributeError(f"module 'scheduler' has no attribute {name!r}")
