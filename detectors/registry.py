"""From a detector's name and the settings to the detector."""

from __future__ import annotations

from typing import Final

from .base import Detector
from .block_rate import BlockRateJumpDetector
from .config import DetectorsConfig
from .exceptions import UnknownDetectorError
from .first_seen import NewToolDetector
from .spike import CallSpikeDetector

#: Every detector, in the order the contract lists the anomaly types.
DETECTOR_NAMES: Final[tuple[str, ...]] = ("call_spike", "block_rate_jump", "new_tool")


def build_detector(name: str, config: DetectorsConfig) -> Detector:
    """The detector called ``name``, with its settings from ``config``.

    Raises:
        UnknownDetectorError: ``name`` is not one of ``DETECTOR_NAMES``.
    """
    if name == "call_spike":
        return CallSpikeDetector(config.call_spike)
    if name == "block_rate_jump":
        return BlockRateJumpDetector(config.block_rate_jump)
    if name == "new_tool":
        return NewToolDetector(config.new_tool)
    raise UnknownDetectorError(f"unknown detector {name!r}; known: {', '.join(DETECTOR_NAMES)}")
