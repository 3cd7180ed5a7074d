"""Signed webhook delivery: endpoints, signing, the dispatcher and per-endpoint health."""

from .config import DeliveryConfig
from .schema import metadata

__all__ = ["DeliveryConfig", "metadata"]
