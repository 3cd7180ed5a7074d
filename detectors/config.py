"""Settings of the detectors: the ``[detectors]`` table of the config file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DetectorsConfig(BaseModel):
    """Thresholds, windows and guards of each detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)
