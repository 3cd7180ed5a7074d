"""Webhook endpoints in the database: create, list, remove, and their delivery health."""

from __future__ import annotations

import builtins
import ipaddress
import logging
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from .exceptions import (
    DeliveryStorageError,
    InvalidUrl,
    PlanNotAllowed,
    SecretKeyError,
    UnknownAccount,
    UnknownEndpoint,
    UnknownEvent,
)
from .payloads import EVENT_TYPES
from .records import DeliveryRecord
from .schema import accounts, webhook_deliveries, webhook_endpoints
from .secret_box import SecretCipher
from .signing import generate_secret, secret_hint

logger = logging.getLogger(__name__)

#: The contract's plans that include webhooks.
WEBHOOK_PLANS: Final[tuple[str, ...]] = ("pro", "scale")
PLAN_MESSAGE: Final = "Webhooks are a Pro and Scale feature"
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
# Longer URLs are not webhook receivers; the cap keeps rows and list output sane.
MAX_URL_LENGTH: Final = 2048


@dataclass(frozen=True, slots=True)
class LastDelivery:
    """The most recent attempt to an endpoint, as ``endpoints list`` shows it."""

    at: datetime
    ok: bool
    status: int | None
    error: str | None
    outcome: str
    delivery_id: str | None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint as anyone may see it: the secret only as its hint."""

    id: str
    account_id: str
    url: str
    events: tuple[str, ...]
    hint: str
    created_at: datetime
    last_delivery: LastDelivery | None


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    """What ``add`` returns: the endpoint and, this one time, its secret."""

    endpoint: Endpoint
    secret: str


@dataclass(frozen=True, slots=True)
class Target:
    """What the dispatcher needs to send to an endpoint; holds the decrypted secret."""

    endpoint_id: str
    account_id: str
    url: str
    events: frozenset[str]
    secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"Target({self.endpoint_id!r}, account={self.account_id!r}, url={self.url!r})"


def validate_url(url: str, *, allow_insecure_localhost: bool) -> str:
    """The URL, checked: ``https://`` with a host, or ``http://`` to localhost when allowed.

    Raises:
        InvalidUrl: with the bad URL and what is allowed.
    """
    shown = url if len(url) <= 200 else url[:200] + "…"
    rule = (
        "endpoint URLs must be https:// (http:// only to localhost, 127.0.0.1 or [::1], "
        "and only with delivery.allow_insecure_localhost = true)"
    )
    if len(url) > MAX_URL_LENGTH:
        raise InvalidUrl(f"URL {shown!r} is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidUrl(f"URL {shown!r} contains spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise InvalidUrl(f"URL {shown!r} is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        raise InvalidUrl(f"URL {shown!r}: {rule}")
    if parts.username is not None or parts.password is not None:
        # Credentials in the URL would be stored and listed in plain text.
        raise InvalidUrl(f"URL {shown!r}: credentials in the URL are not allowed")
    if scheme == "http":
        if not _is_local(host):
            raise InvalidUrl(f"URL {shown!r}: {rule}")
        if not allow_insecure_localhost:
            raise InvalidUrl(
                f"URL {shown!r}: http:// to {host} needs delivery.allow_insecure_localhost "
                "= true (for local development); otherwise use https://"
            )
    return url


def _is_local(host: str) -> bool:
    if host.lower() in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host) in (
            ipaddress.ip_address("127.0.0.1"),
            ipaddress.ip_address("::1"),
        )
    except ValueError:
        return False


def validate_events(events: Iterable[str] | None) -> tuple[str, ...]:
    """The subscribed events in the contract's order; ``None`` means all four.

    Raises:
        UnknownEvent: an empty list, or a name that is not one of the four.
    """
    if events is None:
        return EVENT_TYPES
    wanted = [e.strip() for e in events]
    valid = ", ".join(EVENT_TYPES)
    unknown = [e for e in wanted if e not in EVENT_TYPES]
    if unknown:
        names = ", ".join(repr(e) for e in unknown)
        raise UnknownEvent(f"unknown event {names}; valid events: {valid}")
    if not wanted:
        raise UnknownEvent(f"no events given; choose one or more of: {valid}")
    return tuple(e for e in EVENT_TYPES if e in wanted)


class EndpointStore:
    """Endpoints and their health, on an injected Engine (which the caller owns and disposes).

    Args:
        engine: a migrated database.
        cipher: encrypts secrets before they are stored and decrypts them for sending.
        allow_insecure_localhost: accept ``http://`` URLs to localhost (the config key).
    """

    def __init__(
        self, engine: Engine, cipher: SecretCipher, *, allow_insecure_localhost: bool = False
    ) -> None:
        self._engine = engine
        self._cipher = cipher
        self.allow_insecure_localhost = allow_insecure_localhost

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        # The one place storage errors become ours: callers never see sqlalchemy.exc.
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise DeliveryStorageError(f"{type(exc).__name__}: {exc}") from exc

    def add(
        self,
        account_id: str,
        url: str,
        events: Iterable[str] | None = None,
        *,
        now: datetime | None = None,
    ) -> CreatedEndpoint:
        """Create an endpoint with a new secret, returned this once.

        Raises:
            InvalidUrl, UnknownEvent: bad input; the message says what is allowed.
            UnknownAccount: no such account.
            PlanNotAllowed: the account is on the free plan.
        """
        url = validate_url(url, allow_insecure_localhost=self.allow_insecure_localhost)
        subscribed = validate_events(events)
        secret = generate_secret()
        endpoint = Endpoint(
            id="ep_" + secrets.token_hex(8),
            account_id=account_id,
            url=url,
            events=subscribed,
            hint=secret_hint(secret),
            created_at=now or datetime.now(UTC),
            last_delivery=None,
        )
        with self._begin() as conn:
            self._check_plan(conn, account_id)
            conn.execute(
                webhook_endpoints.insert().values(
                    id=endpoint.id,
                    account_id=account_id,
                    url=url,
                    events=",".join(subscribed),
                    secret_encrypted=self._cipher.encrypt(secret),
                    hint=endpoint.hint,
                    created_at=endpoint.created_at,
                )
            )
        return CreatedEndpoint(endpoint, secret)

    @staticmethod
    def _check_plan(conn: Connection, account_id: str) -> None:
        plan = conn.execute(
            sa.select(accounts.c.plan).where(accounts.c.id == account_id)
        ).scalar_one_or_none()
        if plan is None:
            raise UnknownAccount(f"account {account_id!r} not found")
        if plan not in WEBHOOK_PLANS:
            raise PlanNotAllowed(
                f"account {account_id!r} is on the {plan!r} plan: {PLAN_MESSAGE} "
                f"(plans with webhooks: {', '.join(WEBHOOK_PLANS)})"
            )

    def list(self, account_id: str | None = None) -> list[Endpoint]:
        """Endpoints, oldest first, optionally of one account."""
        query = sa.select(webhook_endpoints).order_by(
            webhook_endpoints.c.created_at, webhook_endpoints.c.id
        )
        if account_id is not None:
            query = query.where(webhook_endpoints.c.account_id == account_id)
        with self._begin() as conn:
            return [_endpoint(row) for row in conn.execute(query).mappings()]

    def get(self, endpoint_id: str) -> Endpoint:
        """One endpoint. Raises UnknownEndpoint."""
        with self._begin() as conn:
            row = (
                conn.execute(
                    sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
                )
                .mappings()
                .one_or_none()
            )
        if row is None:
            raise UnknownEndpoint(f"endpoint {endpoint_id!r} not found")
        return _endpoint(row)

    def remove(self, endpoint_id: str) -> None:
        """Delete an endpoint (its delivery log stays until retention). Raises UnknownEndpoint."""
        with self._begin() as conn:
            deleted = conn.execute(
                webhook_endpoints.delete().where(webhook_endpoints.c.id == endpoint_id)
            ).rowcount
        if not deleted:
            raise UnknownEndpoint(f"endpoint {endpoint_id!r} not found")

    def targets(self) -> builtins.list[Target]:
        """Every endpoint of a ``pro`` or ``scale`` account, with its decrypted secret."""
        query = (
            sa.select(
                webhook_endpoints.c.id,
                webhook_endpoints.c.account_id,
                webhook_endpoints.c.url,
                webhook_endpoints.c.events,
                webhook_endpoints.c.secret_encrypted,
            )
            .join(accounts, accounts.c.id == webhook_endpoints.c.account_id)
            .where(accounts.c.plan.in_(WEBHOOK_PLANS))
        )
        with self._begin() as conn:
            rows = conn.execute(query).all()
        targets = []
        for row in rows:
            try:
                targets.append(self._target(*row))
            except SecretKeyError as exc:
                # One unreadable secret must not stop deliveries to every other endpoint.
                logger.error("endpoint %s skipped: %s", row[0], exc)
        return targets

    def target(self, endpoint_id: str) -> Target:
        """One endpoint to send to, whatever it subscribes to.

        Raises:
            UnknownEndpoint: no such endpoint.
            PlanNotAllowed: its account is no longer on a plan with webhooks.
        """
        query = sa.select(
            webhook_endpoints.c.id,
            webhook_endpoints.c.account_id,
            webhook_endpoints.c.url,
            webhook_endpoints.c.events,
            webhook_endpoints.c.secret_encrypted,
        ).where(webhook_endpoints.c.id == endpoint_id)
        with self._begin() as conn:
            row = conn.execute(query).one_or_none()
            if row is None:
                raise UnknownEndpoint(f"endpoint {endpoint_id!r} not found")
            self._check_plan(conn, row.account_id)
        return self._target(*row)

    def _target(self, id_: str, account_id: str, url: str, events: str, token: str) -> Target:
        secret = self._cipher.decrypt(token)
        return Target(id_, account_id, url, frozenset(events.split(",")), secret)

    def record(self, records: Sequence[DeliveryRecord]) -> None:
        """Write a batch of outcomes: all to the delivery log, the latest of each endpoint on
        its row. One transaction, so a batch of thousands costs about one write."""
        if not records:
            return
        latest: dict[str, DeliveryRecord] = {}
        for rec in records:
            seen = latest.get(rec.endpoint_id)
            if seen is None or rec.at >= seen.at:
                latest[rec.endpoint_id] = rec
        log_rows = [
            {
                "delivery_id": r.delivery_id,
                "endpoint_id": r.endpoint_id,
                "account_id": r.account_id,
                "event_type": r.event_type,
                "at": r.at,
                "duration_ms": r.duration_s * 1000,
                "outcome": r.outcome.value,
                "ok": r.ok,
                "status": r.status,
                "error": r.error,
            }
            for r in records
        ]
        ep = webhook_endpoints.c
        update = (
            webhook_endpoints.update()
            .where(ep.id == sa.bindparam("b_id"))
            # Batches from two processes (the daemon, `endpoints test`) may interleave.
            .where(
                sa.or_(ep.last_delivery_at.is_(None), ep.last_delivery_at <= sa.bindparam("b_at"))
            )
            .values(
                last_delivery_at=sa.bindparam("b_at"),
                last_delivery_id=sa.bindparam("b_delivery_id"),
                last_outcome=sa.bindparam("b_outcome"),
                last_ok=sa.bindparam("b_ok"),
                last_status=sa.bindparam("b_status"),
                last_error=sa.bindparam("b_error"),
            )
        )
        health_rows = [
            {
                "b_id": r.endpoint_id,
                "b_at": r.at,
                "b_delivery_id": r.delivery_id,
                "b_outcome": r.outcome.value,
                "b_ok": r.ok,
                "b_status": r.status,
                "b_error": r.error,
            }
            for r in latest.values()
        ]
        with self._begin() as conn:
            conn.execute(webhook_deliveries.insert(), log_rows)
            conn.execute(update, health_rows)

    def prune_log(self, before: datetime) -> int:
        """Delete delivery log entries older than ``before``; returns how many."""
        with self._begin() as conn:
            return conn.execute(
                webhook_deliveries.delete().where(webhook_deliveries.c.at < before)
            ).rowcount

    def log(
        self, endpoint_id: str | None = None, limit: int = 100
    ) -> builtins.list[DeliveryLogEntry]:
        """The most recent delivery log entries, newest first."""
        d = webhook_deliveries.c
        query = sa.select(webhook_deliveries).order_by(d.at.desc(), d.id.desc()).limit(limit)
        if endpoint_id is not None:
            query = query.where(d.endpoint_id == endpoint_id)
        with self._begin() as conn:
            return [
                DeliveryLogEntry(
                    delivery_id=row["delivery_id"],
                    endpoint_id=row["endpoint_id"],
                    account_id=row["account_id"],
                    event_type=row["event_type"],
                    at=row["at"],
                    duration_s=row["duration_ms"] / 1000,
                    outcome=row["outcome"],
                    ok=bool(row["ok"]),
                    status=row["status"],
                    error=row["error"],
                )
                for row in conn.execute(query).mappings()
            ]


@dataclass(frozen=True, slots=True)
class DeliveryLogEntry:
    """One row of the delivery log."""

    delivery_id: str
    endpoint_id: str
    account_id: str
    event_type: str
    at: datetime
    duration_s: float
    outcome: str
    ok: bool
    status: int | None
    error: str | None


def _endpoint(row: sa.RowMapping) -> Endpoint:
    last = None
    if row["last_delivery_at"] is not None:
        last = LastDelivery(
            at=row["last_delivery_at"],
            ok=bool(row["last_ok"]),
            status=row["last_status"],
            error=row["last_error"],
            outcome=row["last_outcome"],
            delivery_id=row["last_delivery_id"],
        )
    return Endpoint(
        id=row["id"],
        account_id=row["account_id"],
        url=row["url"],
        events=tuple(row["events"].split(",")),
        hint=row["hint"],
        created_at=row["created_at"],
        last_delivery=last,
    )
