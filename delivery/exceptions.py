"""Errors raised by ``delivery``.

Standard library only, like :mod:`delivery.signing`, so a receiver can copy both files.

::

    DeliveryError
    ├── SignatureError (ValueError)          verify() rejected a request
    │   ├── MissingHeader                    a signing header is absent or empty
    │   ├── BadTimestamp                     x-enforgate-timestamp is not a decimal integer
    │   ├── StaleTimestamp                   the timestamp is outside the tolerance (replay)
    │   ├── SignatureMismatch                the signature does not match the body
    │   └── InvalidBody (TypeError)          the body was not passed as raw bytes
    ├── InvalidSecret (ValueError)           a signing secret that is empty or not text
    ├── InvalidEndpoint (ValueError)         an endpoint that cannot be created as asked
    │   ├── InvalidUrl                       not https://, or http:// outside localhost
    │   └── UnknownEvent                     an event name that is not one of the four
    ├── PlanNotAllowed (PermissionError)     a free account: webhooks are Pro and Scale only
    ├── NotFound (LookupError)
    │   ├── UnknownAccount                   no such account in ``accounts``
    │   └── UnknownEndpoint                  no such endpoint id
    ├── SecretKeyError                       the encryption key (env var or key file) is unusable
    └── DeliveryStorageError                 the database could not be read or written
"""

# Names say what went wrong, as STYLE.md's `UnknownEvent` does; an "Error" suffix adds nothing.
# ruff: noqa: N818

from __future__ import annotations


class DeliveryError(Exception):
    """Root of the errors this package raises."""


class SignatureError(DeliveryError, ValueError):
    """A webhook request failed verification; the subclass says why."""


class MissingHeader(SignatureError):
    """A required ``x-enforgate-*`` header is absent or empty."""


class BadTimestamp(SignatureError):
    """``x-enforgate-timestamp`` is not milliseconds since the epoch as a decimal integer."""


class StaleTimestamp(SignatureError):
    """The timestamp is further from now than the tolerance: a replay or a skewed clock."""


class SignatureMismatch(SignatureError):
    """The signature is malformed or was not made with this secret over this body."""


class InvalidBody(SignatureError, TypeError):
    """The body was not the raw request bytes (e.g. already decoded text or parsed JSON)."""


class InvalidSecret(DeliveryError, ValueError):
    """A signing secret that is empty or not a string."""


class InvalidEndpoint(DeliveryError, ValueError):
    """An endpoint cannot be created as asked."""


class InvalidUrl(InvalidEndpoint):
    """The URL is not ``https://`` (nor an allowed ``http://`` localhost URL) or is malformed."""


class UnknownEvent(InvalidEndpoint):
    """An event name that is not one an endpoint can subscribe to."""


class PlanNotAllowed(DeliveryError, PermissionError):
    """The account's plan does not include webhooks (only ``pro`` and ``scale`` do)."""


class NotFound(DeliveryError, LookupError):
    """Something named by id does not exist."""


class UnknownAccount(NotFound):
    """No account with this id in the ``accounts`` table."""


class UnknownEndpoint(NotFound):
    """No endpoint with this id."""


class SecretKeyError(DeliveryError):
    """The key that encrypts endpoint secrets is missing, malformed or cannot be created."""


class DeliveryStorageError(DeliveryError):
    """The database could not be read or written; the message carries the driver's error."""
