"""Signed webhook delivery: endpoints, signing, the dispatcher and per-endpoint health."""

from . import payloads
from .config import DeliveryConfig
from .dispatcher import Dispatcher, Observer
from .endpoints import (
    CreatedEndpoint,
    DeliveryLogEntry,
    Endpoint,
    EndpointStore,
    LastDelivery,
    validate_events,
    validate_url,
)
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
from .records import DeliveryOutcome, DeliveryRecord
from .schema import metadata
from .secret_box import SECRET_KEY_ENV, SecretCipher, load_cipher
from .signing import generate_secret, secret_hint, sign, verify

__all__ = [
    "EVENT_TYPES",
    "SECRET_KEY_ENV",
    "BadTimestamp",
    "CreatedEndpoint",
    "DeliveryConfig",
    "DeliveryError",
    "DeliveryLogEntry",
    "DeliveryOutcome",
    "DeliveryRecord",
    "DeliveryStorageError",
    "Dispatcher",
    "Endpoint",
    "EndpointStore",
    "InvalidBody",
    "InvalidEndpoint",
    "InvalidSecret",
    "InvalidUrl",
    "LastDelivery",
    "MissingHeader",
    "NotFound",
    "Observer",
    "PlanNotAllowed",
    "SecretCipher",
    "SecretKeyError",
    "SignatureError",
    "SignatureMismatch",
    "StaleTimestamp",
    "UnknownAccount",
    "UnknownEndpoint",
    "UnknownEvent",
    "format_time",
    "generate_secret",
    "load_cipher",
    "metadata",
    "payloads",
    "secret_hint",
    "sign",
    "validate_events",
    "validate_url",
    "verify",
]
