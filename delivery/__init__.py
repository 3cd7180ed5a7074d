"""Signed webhook delivery: endpoints, signing, the dispatcher and per-endpoint health."""

from . import payloads
from .config import DeliveryConfig
from .payloads import EVENT_TYPES, format_time
from .schema import metadata

__all__ = ["EVENT_TYPES", "DeliveryConfig", "format_time", "metadata", "payloads"]
