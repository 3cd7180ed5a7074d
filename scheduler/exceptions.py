"""Errors raised by the daemon, its storage and its command line.

::

    EnforgateError
    ├── ConfigError (ValueError)      the config file or an ENFORGATE_* override is invalid
    ├── StorageError                  the database could not be reached or migrated
    └── MalformedRowError (ValueError) a row the gateway wrote cannot become an event
"""

from __future__ import annotations


class EnforgateError(Exception):
    """Root of the errors this package raises."""


class ConfigError(EnforgateError, ValueError):
    """The configuration is invalid; the message names the file, the key and what is allowed."""


class StorageError(EnforgateError):
    """The database could not be reached, opened or migrated."""


class MalformedRowError(EnforgateError, ValueError):
    """A row the gateway wrote cannot be turned into an event; it is counted and skipped."""
