"""Signed webhook delivery: endpoints, signing, the dispatcher and per-endpoint health."""

from . import payloads
from .config import DeliveryConfig
from .exceptions import (
    BadTimestamp,
    DeliveryError,
    DeliveryStorageError,
    InvalidBody,
    InvalidEndpoint,
    InvalidSecret,
    InvalidUrl,
    MissingHeader,
    NotFound,
    PlanNotAllowed,
    SecretKeyError,
    SignatureError,
    SignatureMismatch,
    StaleTimestamp,
    UnknownAccount,
    UnknownEndpoint,
    UnknownEvent,
)
from .payloads import EVENT_TYPES, format_time
from .schema import metadata
from .signing import generate_secret, secret_hint, sign, verify

__all__ = [
    "EVENT_TYPES",
    "BadTimestamp",
    "DeliveryConfig",
    "DeliveryError",
    "DeliveryStorageError",
    "InvalidBody",
    "InvalidEndpoint",
    "InvalidSecret",
    "InvalidUrl",
    "MissingHeader",
    "NotFound",
    "PlanNotAllowed",
    "SecretKeyError",
    "SignatureError",
    "SignatureMismatch",
    "StaleTimestamp",
    "UnknownAccount",
    "UnknownEndpoint",
    "UnknownEvent",
    "format_time",
    "generate_secret",
    "metadata",
    "payloads",
    "secret_hint",
    "sign",
    "verify",
]
