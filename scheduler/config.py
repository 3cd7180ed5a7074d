"""The configuration: one TOML file, validated where it is declared, with ENFORGATE_* overrides.

Where the file comes from, first match wins: the ``--config`` option, the ``ENFORGATE_CONFIG``
variable, ``./enforgate.toml`` if present, else the built-in defaults. Any variable named
``ENFORGATE_`` + a key upper-cased with ``__`` between its parts overrides that key
(``ENFORGATE_DATABASE__URL`` sets ``database.url``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from delivery import DeliveryConfig
from detectors import DetectorsConfig

from .exceptions import ConfigError

ENV_PREFIX = "ENFORGATE_"
ENV_CONFIG_PATH = "ENFORGATE_CONFIG"
DEFAULT_CONFIG_FILE = Path("enforgate.toml")
# The embedded default: a file next to where the daemon runs, so `make run` needs no server.
DEFAULT_DATABASE_URL = "sqlite:///./enforgate.db"
# The contract's default: a blocked call reaches its receivers about a second after it is logged.
DEFAULT_TAIL_INTERVAL_S = 1.0

_SUPPORTED_DIALECTS = ("sqlite", "postgresql")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    """``[database]``: where the activity log and the project's own tables live."""

    url: str = DEFAULT_DATABASE_URL

    @field_validator("url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL; expected e.g. sqlite:///./enforgate.db or "
                "postgresql://user:password@host/dbname"
            ) from None
        if url.get_backend_name() not in _SUPPORTED_DIALECTS:
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r}; "
                f"allowed: {', '.join(_SUPPORTED_DIALECTS)}"
            )
        return value


class SchedulerConfig(_Section):
    """``[scheduler]``: the daemon's clocks, the tail, and what is sent when."""

    tail_interval_s: float = Field(DEFAULT_TAIL_INTERVAL_S, gt=0, le=3600)
    # A first start begins at "now": a new daemon must not flood receivers with history.
    tail_start: Literal["now", "beginning"] = "now"
    # How late an approval row may commit (after its created_at/resolved_at) and still be sent.
    tail_lookback_s: float = Field(300, ge=0, le=86_400)
    # How long a missing activity_log id is waited for before it counts as rolled back. Five
    # minutes outlasts any sane gateway transaction.
    tail_gap_timeout_s: float = Field(300, gt=0, le=86_400)
    # At most this many activity rows per poll; the rest are read on the next poll.
    tail_batch: int = Field(5_000, ge=100, le=1_000_000)
    # A continuing incident pages once an hour, not every detector interval.
    cooldown_s: float = Field(3_600, ge=0, le=30 * 86_400)
    # After downtime, anomalies in windows older than this are recorded as skipped, not sent:
    # a page about last night's spike, this morning, helps nobody.
    max_catchup_age_s: float = Field(6 * 3_600, gt=0, le=30 * 86_400)
    # On SIGTERM, in-flight deliveries get this long to finish; the outbox re-sends the rest.
    shutdown_deadline_s: float = Field(10, ge=0, le=600)
    # Done outbox rows (the keys that stop duplicates) are kept this long.
    outbox_retention_days: float = Field(7, gt=0, le=365)
    # Events the in-process hook may queue before it drops (and counts) the next one.
    hook_queue_size: int = Field(10_000, ge=1, le=1_000_000)


class MetricsConfig(_Section):
    """``[metrics]``: Prometheus metrics on a local port."""

    enabled: bool = True
    # Loopback by default: metrics are for the local agent that scrapes them.
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=1, le=65_535)


class LoggingConfig(_Section):
    """``[logging]``: readable text for a terminal, JSON lines for a log pipeline."""

    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Settings(_Section):
    """Every setting of the daemon and the command line."""

    database: DatabaseConfig = DatabaseConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    detectors: DetectorsConfig = DetectorsConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()


@dataclass(frozen=True)
class LoadedSettings:
    """Settings together with where they came from, for messages and ``config check``."""

    settings: Settings
    source: str  # the file's path, or "built-in defaults"
    overrides: tuple[str, ...]  # the ENFORGATE_* variables that were applied


def resolve_config_path(explicit: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read, or None for the built-in defaults."""
    if explicit is not None:
        return Path(explicit)
    if environ.get(ENV_CONFIG_PATH):
        return Path(environ[ENV_CONFIG_PATH])
    if DEFAULT_CONFIG_FILE.is_file():
        return DEFAULT_CONFIG_FILE
    return None


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> LoadedSettings:
    """Read, merge and validate the configuration.

    Args:
        path: the ``--config`` option, if given.
        environ: the environment to read ``ENFORGATE_*`` from (default: ``os.environ``).

    Raises:
        ConfigError: the file is missing or unreadable, is not TOML, or a value is invalid. The
            message names the file (or variable), the key, the bad value and what is allowed.
    """
    env = os.environ if environ is None else environ
    config_path = resolve_config_path(path, env)
    raw: dict[str, Any] = {}
    source = "built-in defaults"
    if config_path is not None:
        source = str(config_path)
        try:
            with config_path.open("rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{source}: config file not found") from None
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config file: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None

    env_keys = _apply_env_overrides(raw, env)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, env_keys)) from None
    return LoadedSettings(settings, source, tuple(sorted(env_keys.values())))


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Merge ENFORGATE_A__B=v into raw as raw[a][b] = v; return {"a.b": "ENFORGATE_A__B"}."""
    applied: dict[str, str] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue  # ENFORGATE_CONFIG, secrets keys and the like are not config keys
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            raise ConfigError(f"environment variable {name}: empty key part")
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"environment variable {name}: {'.'.join(parts[:-1])} is not a table"
                )
            node = child
        node[parts[-1]] = value
        applied[".".join(parts)] = name
    return applied


def _describe(exc: ValidationError, source: str, env_keys: Mapping[str, str]) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(p) for p in error["loc"])
        where = f"environment variable {env_keys[key]}" if key in env_keys else source
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(error["loc"][:-1])
            lines.append(f"{where}: {key}: unknown key; allowed here: {', '.join(allowed)}")
            continue
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {key} = {error['input']!r}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the table at ``loc``, for an "unknown key" message."""
    node: Any = Settings
    for part in loc:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            node = field.annotation if field is not None else None
        elif get_origin(node) is dict:  # e.g. per-account overrides: any key, one model
            node = get_args(node)[1]
        else:
            node = None
        node = _unwrap_optional(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return sorted(node.model_fields)
    return ["(see the README)"]


def _unwrap_optional(node: Any) -> Any:
    args = [a for a in get_args(node) if a is not type(None)]
    return args[0] if get_origin(node) in (Union, UnionType) and len(args) == 1 else node


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, with passwords and keys replaced by '***'."""
    data = settings.model_dump(mode="json")
    url = make_url(settings.database.url)
    if url.password:
        data["database"]["url"] = url.render_as_string(hide_password=True)
    clean: dict[str, Any] = _redact_secrets(data)
    return clean


def _redact_secrets(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: "***" if _is_secret_key(k) and v else _redact_secrets(v) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_redact_secrets(v) for v in node]
    return node


def _is_secret_key(key: str) -> bool:
    return key.endswith(("secret", "password", "_key")) and not key.endswith("_file")
