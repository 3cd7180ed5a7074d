"""Anomaly detectors: plain code that takes aggregated activity and returns anomalies."""

from .config import DetectorsConfig

__all__ = ["DetectorsConfig"]
