"""Settings of the detectors: the ``[detectors]`` table of the config file.

Each detector has its own table (``[detectors.call_spike]``, ``[detectors.block_rate_jump]``,
``[detectors.new_tool]``) with an ``enabled`` switch, its window, how often the daemon runs it,
and its thresholds. Thresholds can be overridden per account:

.. code-block:: toml

    [detectors.call_spike.accounts."acct_noisy"]
    min_ratio = 6.0

The defaults were chosen with ``python -m bench.detect_quality`` (see docs/detectors.md).
"""

from __future__ import annotations

from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .anomaly import Severity
from .exceptions import UnknownDetectorError

#: Windows are whole multiples of this and divide a day, so that every window starts on a UTC
#: boundary and "the same window yesterday" exists. Five minutes is the finest window worth
#: judging: anything shorter holds too few calls for a statistic in most accounts.
WINDOW_GRANULARITY_S: Final = 300
DAY_S: Final = 86_400

# Late rows: the gateway commits concurrently, so a window is judged only once it has been
# closed this long. Two minutes covers a slow transaction with room to spare.
DEFAULT_SETTLE_DELAY_S: Final = 120
# Each refresh re-reads this much of the log before its last read, so rows that became visible
# late (smaller id or earlier time) are still counted. Well above the settle delay.
DEFAULT_REREAD_MARGIN_S: Final = 900
# The daemon runs each detector this often; a run with nothing due costs one small refresh.
DEFAULT_INTERVAL_S: Final = 60.0
# An hour is long enough to hold a statistic for small accounts and short enough to react.
DEFAULT_WINDOW_S: Final = 3600
# A new tool is a security signal: judge it in five-minute windows for a quick alert.
DEFAULT_NEW_TOOL_WINDOW_S: Final = 300

# Severity: how many times the smallest alarming rise the observation rose. 1x..1.5x is low.
DEFAULT_SEVERITY_MEDIUM: Final = 1.5
DEFAULT_SEVERITY_HIGH: Final = 3.0

# call_spike. A window needs 50 calls before a rise means anything to a human.
DEFAULT_SPIKE_MIN_CALLS: Final = 50
# Three times the usual volume: the benchmark's daily peaks and Monday ramps stay below it.
DEFAULT_SPIKE_MIN_RATIO: Final = 3.0
# Robust z-score (median/MAD, Poisson floor): 6 keeps noisy mid-size accounts quiet.
DEFAULT_SPIKE_MIN_SCORE: Final = 6.0
# The baseline never drops below 10 calls, so an empty or tiny reference cannot make a spike.
DEFAULT_SPIKE_MIN_BASELINE: Final = 10.0
# The same window on the previous 7 days of the same kind (working day or weekend): the median
# of a week of comparable days is robust to one or two unusual ones.
DEFAULT_SPIKE_SEASONAL_DAYS: Final = 7
# Weekends are compared with weekends (a weekend's quiet hours are not a weekday's), which
# needs four weeks of look-back to find 7 weekend days.
DEFAULT_SPIKE_WEEKLY: Final = True
DEFAULT_SPIKE_LOOKBACK_DAYS: Final = 28
# With fewer than 3 such days the median is not yet robust; fall back to recent windows.
DEFAULT_SPIKE_MIN_SEASONAL_DAYS: Final = 3
# The fallback, off by default: a new account's first days are not judged, because a day of
# history cannot tell a morning ramp from a spike. Set e.g. 24 to judge against the previous
# 24 windows (at least half of them seen) until the seasonal history exists.
DEFAULT_SPIKE_RECENT_WINDOWS: Final = 0

# block_rate_jump. Fewer than 50 calls cannot tell a policy change from bad luck.
DEFAULT_BLOCK_MIN_CALLS: Final = 50
# A rise smaller than 10 percentage points is not worth waking someone for.
DEFAULT_BLOCK_MIN_RISE_PP: Final = 10.0
# One-sided z of the window's share against the baseline share (about p < 1e-5).
DEFAULT_BLOCK_MIN_Z: Final = 4.5
# The baseline share is the pooled share of the previous 7 days.
DEFAULT_BLOCK_BASELINE_DAYS: Final = 7
# ...over at least 200 calls, or the account is not judged yet.
DEFAULT_BLOCK_MIN_BASELINE_CALLS: Final = 200
# A clean account (0 denied) still has a 1% floor, so one denied call is not infinitely unusual.
DEFAULT_BLOCK_MIN_BASELINE_RATE: Final = 0.01

# new_tool. Three days of history: an account's first days set up its tools; learn, not report.
DEFAULT_NEW_TOOL_WARMUP_S: Final = 3 * DAY_S
DEFAULT_NEW_TOOL_SEVERITY: Final[Severity] = "medium"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _DetectorConfig(_Model):
    """What every detector has: a switch, a window and how often the daemon runs it."""

    enabled: bool = True
    window_s: int = Field(DEFAULT_WINDOW_S, gt=0, le=DAY_S)
    interval_s: float = Field(DEFAULT_INTERVAL_S, gt=0, le=DAY_S)

    @field_validator("window_s")
    @classmethod
    def _aligned_window(cls, value: int) -> int:
        if value % WINDOW_GRANULARITY_S or DAY_S % value:
            raise ValueError(
                f"must be a multiple of {WINDOW_GRANULARITY_S} that divides a day "
                "(e.g. 300, 900, 1800, 3600, 7200, 86400)"
            )
        return value

    def for_account(self, account_id: str) -> Self:
        """These settings with the account's overrides applied (if any)."""
        overrides: dict[str, _Model] = getattr(self, "accounts", {})
        override = overrides.get(account_id)
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class _SeverityBands(_Model):
    severity_medium: float = Field(DEFAULT_SEVERITY_MEDIUM, ge=1)
    severity_high: float = Field(DEFAULT_SEVERITY_HIGH, ge=1)

    @model_validator(mode="after")
    def _ordered_bands(self) -> Self:
        if self.severity_high < self.severity_medium:
            raise ValueError(
                f"severity_high ({self.severity_high}) must be >= "
                f"severity_medium ({self.severity_medium})"
            )
        return self


class CallSpikeOverride(_Model):
    """Per-account thresholds of ``call_spike``; unset keys keep the detector's value."""

    min_calls: int | None = Field(None, ge=1)
    min_ratio: float | None = Field(None, ge=1)
    min_score: float | None = Field(None, ge=0)
    min_baseline: float | None = Field(None, ge=1)


class CallSpikeConfig(_DetectorConfig, _SeverityBands):
    """``[detectors.call_spike]``: an unusual rise in an account's call volume."""

    min_calls: int = Field(DEFAULT_SPIKE_MIN_CALLS, ge=1)
    min_ratio: float = Field(DEFAULT_SPIKE_MIN_RATIO, ge=1)
    min_score: float = Field(DEFAULT_SPIKE_MIN_SCORE, ge=0)
    min_baseline: float = Field(DEFAULT_SPIKE_MIN_BASELINE, ge=1)
    seasonal_days: int = Field(DEFAULT_SPIKE_SEASONAL_DAYS, ge=1, le=56)
    min_seasonal_days: int = Field(DEFAULT_SPIKE_MIN_SEASONAL_DAYS, ge=1, le=56)
    weekly: bool = DEFAULT_SPIKE_WEEKLY
    lookback_days: int = Field(DEFAULT_SPIKE_LOOKBACK_DAYS, ge=1, le=90)
    recent_windows: int = Field(DEFAULT_SPIKE_RECENT_WINDOWS, ge=0, le=2016)
    per_tool: bool = False
    accounts: dict[str, CallSpikeOverride] = {}

    @model_validator(mode="after")
    def _enough_days(self) -> Self:
        if self.min_seasonal_days > self.seasonal_days:
            raise ValueError(
                f"min_seasonal_days ({self.min_seasonal_days}) must be <= "
                f"seasonal_days ({self.seasonal_days})"
            )
        if self.lookback_days < self.seasonal_days:
            raise ValueError(
                f"lookback_days ({self.lookback_days}) must be >= "
                f"seasonal_days ({self.seasonal_days})"
            )
        return self

    @property
    def lookback_s(self) -> int:
        """How far before a window the detector reads history."""
        return max(self.lookback_days * DAY_S, self.recent_windows * self.window_s)


class BlockRateOverride(_Model):
    """Per-account thresholds of ``block_rate_jump``; unset keys keep the detector's value."""

    min_calls: int | None = Field(None, ge=1)
    min_rise_pp: float | None = Field(None, gt=0, le=100)
    min_z: float | None = Field(None, ge=0)
    min_baseline_rate: float | None = Field(None, ge=0, lt=1)


class BlockRateConfig(_DetectorConfig, _SeverityBands):
    """``[detectors.block_rate_jump]``: the share of denied calls rises above the usual share."""

    min_calls: int = Field(DEFAULT_BLOCK_MIN_CALLS, ge=1)
    min_rise_pp: float = Field(DEFAULT_BLOCK_MIN_RISE_PP, gt=0, le=100)
    min_z: float = Field(DEFAULT_BLOCK_MIN_Z, ge=0)
    baseline_days: int = Field(DEFAULT_BLOCK_BASELINE_DAYS, ge=1, le=56)
    min_baseline_calls: int = Field(DEFAULT_BLOCK_MIN_BASELINE_CALLS, ge=1)
    min_baseline_rate: float = Field(DEFAULT_BLOCK_MIN_BASELINE_RATE, ge=0, lt=1)
    accounts: dict[str, BlockRateOverride] = {}

    @property
    def lookback_s(self) -> int:
        """How far before a window the detector reads history."""
        return self.baseline_days * DAY_S


class NewToolOverride(_Model):
    """Per-account settings of ``new_tool``; unset keys keep the detector's value."""

    warmup_s: int | None = Field(None, ge=0)
    severity: Severity | None = None


class NewToolConfig(_DetectorConfig):
    """``[detectors.new_tool]``: an account uses a (server, tool) pair for the first time."""

    window_s: int = Field(DEFAULT_NEW_TOOL_WINDOW_S, gt=0, le=DAY_S)
    warmup_s: int = Field(DEFAULT_NEW_TOOL_WARMUP_S, ge=0)
    severity: Severity = DEFAULT_NEW_TOOL_SEVERITY
    accounts: dict[str, NewToolOverride] = {}

    @property
    def lookback_s(self) -> int:
        """New tools are judged against the known pairs, not against windows of history."""
        return 0


class DetectorsConfig(_Model):
    """``[detectors]``: the settle delay shared by all detectors, then one table per detector."""

    settle_delay_s: int = Field(DEFAULT_SETTLE_DELAY_S, ge=0, le=DAY_S)
    reread_margin_s: int = Field(DEFAULT_REREAD_MARGIN_S, ge=0, le=7 * DAY_S)
    call_spike: CallSpikeConfig = CallSpikeConfig()
    block_rate_jump: BlockRateConfig = BlockRateConfig()
    new_tool: NewToolConfig = NewToolConfig()

    @model_validator(mode="after")
    def _margin_covers_settle(self) -> Self:
        if self.reread_margin_s < self.settle_delay_s:
            raise ValueError(
                f"reread_margin_s ({self.reread_margin_s}) must be >= settle_delay_s "
                f"({self.settle_delay_s}), or rows that arrive late but in time are lost"
            )
        return self

    def detector(self, name: str) -> CallSpikeConfig | BlockRateConfig | NewToolConfig:
        """The settings of the detector called ``name``."""
        value: Any = getattr(self, name, None)
        if not isinstance(value, _DetectorConfig):
            raise UnknownDetectorError(
                f"unknown detector {name!r}; known: call_spike, block_rate_jump, new_tool"
            )
        return value  # type: ignore[return-value]
