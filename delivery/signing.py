"""Signing a webhook and verifying one on the receiver's side (the contract's section 2).

Standard library only (with :mod:`delivery.exceptions`): a receiver may copy the two files.

The signature is the lowercase hex HMAC-SHA256, keyed with the whole secret string (``whsec_``
prefix included) as UTF-8, over ``timestamp + "." + raw body``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from .exceptions import (
    BadTimestamp,
    InvalidBody,
    InvalidSecret,
    MissingHeader,
    SignatureMismatch,
    StaleTimestamp,
)

SECRET_PREFIX: Final = "whsec_"  # noqa: S105  (a format prefix, not a secret)
# The Standard Webhooks secret format: 32 random bytes, i.e. a 256-bit HMAC key.
SECRET_BYTES: Final = 32
HINT_SUFFIX_CHARS: Final = 4

HEADER_EVENT: Final = "x-enforgate-event"
HEADER_TIMESTAMP: Final = "x-enforgate-timestamp"
HEADER_SIGNATURE: Final = "x-enforgate-signature"
HEADER_DELIVERY: Final = "x-enforgate-delivery"

# Five minutes, as Stripe and Standard Webhooks use: wide enough for clock skew and a slow
# queue, narrow enough that a captured request cannot be replayed much later.
DEFAULT_TOLERANCE: Final = timedelta(minutes=5)

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
# 16 digits are ~317 years of milliseconds: anything longer is not a timestamp.
_TIMESTAMP = re.compile(r"[0-9]{1,16}")


def generate_secret() -> str:
    """A new endpoint secret: ``whsec_`` + standard base64 of 32 bytes from :mod:`secrets`."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_hint(secret: str) -> str:
    """What lists show instead of the secret: ``whsec_…`` and its last four characters."""
    return f"{SECRET_PREFIX}…{secret[-HINT_SUFFIX_CHARS:]}"


def sign(secret: str, timestamp_ms: int, body: bytes) -> str:
    """The ``x-enforgate-signature`` value for ``body`` sent at ``timestamp_ms``.

    Raises:
        InvalidSecret: ``secret`` is empty or not a string.
    """
    mac = hmac.new(_key(secret), str(int(timestamp_ms)).encode("ascii") + b".", hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    now: datetime | None = None,
) -> None:
    """Check a received webhook: its signature over the exact raw body, and its freshness.

    Args:
        secret: the endpoint's secret, as shown once at creation (``whsec_...``).
        headers: the request's headers; names are matched case-insensitively.
        body: the raw request body, byte for byte as received (not re-encoded JSON).
        tolerance: how far the timestamp may be from ``now``, either way.
        now: the current time (aware); default the system clock.

    Raises:
        MissingHeader: the timestamp or signature header is absent or empty.
        BadTimestamp: the timestamp is not a decimal integer of milliseconds.
        StaleTimestamp: the timestamp is more than ``tolerance`` away from ``now``.
        SignatureMismatch: the signature is malformed or does not match.
        InvalidBody: ``body`` is not bytes.
        InvalidSecret: ``secret`` is empty or not a string.

    All of them are :class:`SignatureError` (a ``ValueError``): catch that to answer 400/401.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise InvalidBody(
            f"body is {type(body).__name__}: pass the raw request bytes, exactly as received"
        )
    timestamp = _header(headers, HEADER_TIMESTAMP)
    signature = _header(headers, HEADER_SIGNATURE)
    if not _TIMESTAMP.fullmatch(timestamp):
        raise BadTimestamp(
            f"{HEADER_TIMESTAMP} {timestamp[:40]!r}: expected milliseconds since the Unix "
            "epoch as a decimal integer"
        )
    current = datetime.now(UTC) if now is None else now
    if current.tzinfo is None:
        raise ValueError(f"naive datetime now={current!r}: pass an aware time")
    skew_ms = abs(round(current.timestamp() * 1000) - int(timestamp))
    if skew_ms > tolerance.total_seconds() * 1000:
        raise StaleTimestamp(
            f"{HEADER_TIMESTAMP} {timestamp} is {skew_ms / 1000:.0f} s from now; "
            f"allowed: {tolerance.total_seconds():.0f} s"
        )
    if not _HEX_SHA256.fullmatch(signature):
        raise SignatureMismatch(f"{HEADER_SIGNATURE}: expected 64 lowercase hex digits")
    expected = sign(secret, int(timestamp), bytes(body))
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        raise SignatureMismatch(
            f"{HEADER_SIGNATURE} does not match this body and secret "
            "(check the secret, and that the body is the raw bytes as received)"
        )


def _key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret:
        raise InvalidSecret("the signing secret must be a non-empty string (whsec_...)")
    return secret.encode("utf-8")


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        # Plain dicts are case-sensitive; HTTP header names are not.
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if not isinstance(value, str) or not value.strip():
        raise MissingHeader(f"missing header {name}")
    return value.strip()
