"""Anomaly detectors: plain code that takes aggregated activity and returns anomalies.

Nothing here knows about the database, the clock, the scheduler or webhooks: the caller counts
calls per window (``Observations``), hands them to a ``Detector`` and gets ``Anomaly`` records.
"""

from .anomaly import Anomaly, AnomalyType, Severity
from .base import (
    ACCOUNT_COLUMNS,
    TOOL_COLUMNS,
    Assessment,
    Detector,
    Level,
    Observations,
    ToolKey,
    empty_counts,
    epoch_s,
    from_epoch_s,
    severity_for,
)
from .block_rate import BlockRateJumpDetector
from .config import (
    DAY_S,
    WINDOW_GRANULARITY_S,
    BlockRateConfig,
    BlockRateOverride,
    CallSpikeConfig,
    CallSpikeOverride,
    DetectorsConfig,
    NewToolConfig,
    NewToolOverride,
)
from .exceptions import DetectorError, InvalidObservationsError, UnknownDetectorError
from .first_seen import NewToolDetector
from .registry import DETECTOR_NAMES, build_detector
from .spike import CallSpikeDetector

__all__ = [
    "ACCOUNT_COLUMNS",
    "DAY_S",
    "DETECTOR_NAMES",
    "TOOL_COLUMNS",
    "WINDOW_GRANULARITY_S",
    "Anomaly",
    "AnomalyType",
    "Assessment",
    "BlockRateConfig",
    "BlockRateJumpDetector",
    "BlockRateOverride",
    "CallSpikeConfig",
    "CallSpikeDetector",
    "CallSpikeOverride",
    "Detector",
    "DetectorError",
    "DetectorsConfig",
    "InvalidObservationsError",
    "Level",
    "NewToolConfig",
    "NewToolDetector",
    "NewToolOverride",
    "Observations",
    "Severity",
    "ToolKey",
    "UnknownDetectorError",
    "build_detector",
    "empty_counts",
    "epoch_s",
    "from_epoch_s",
    "severity_for",
]
