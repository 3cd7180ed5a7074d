"""The ``Detector`` contract, the data every detector is handed, and what they share.

A detector is pure judgement: given the counts of one closed window and of the windows before
it, it returns the anomalies of that window. It reads no clock, no database and no state of its
own; whoever calls it (the daemon, the backtest, a test) gathers the counts, decides which
windows are due, and remembers what was already judged or sent.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Final, Literal

import pandas as pd

from .anomaly import Anomaly, AnomalyType, Severity
from .exceptions import InvalidObservationsError

#: Columns of ``Observations.accounts``: one row per account and window that had calls.
ACCOUNT_COLUMNS: Final = ("account_id", "start", "calls", "denied")
#: Columns of ``Observations.tools``: one row per account, (server, tool) and window.
TOOL_COLUMNS: Final = ("account_id", "server", "tool", "start", "calls", "denied")

Level = Literal["account", "tool"]
ToolKey = tuple[str, str, str]  # (account_id, server, tool)


@dataclass(frozen=True)
class Observations:
    """The counts a detector judges one window with.

    Counts are per window of the detector's size, keyed by ``start``: the window's start in
    whole seconds since the Unix epoch (UTC). A missing row means no calls in that window.
    Rows with ``start >= window_end`` must not be present: a detector never sees the future.

    Attributes:
        window_start: the judged window's start (aware UTC).
        window_end: its end; ``window_end - window_start`` is the detector's window.
        accounts: ``account_id, start, calls, denied`` for the judged window and the history
            before it (the detector's look-back), per account.
        tools: the same per ``(server, tool)``; only needed by per-tool judgements.
        known_tools: (account, server, tool) triples already seen before this window.
        account_since: when each account was first seen, for ``new_tool``'s warm-up.
    """

    window_start: datetime
    window_end: datetime
    accounts: pd.DataFrame = field(default_factory=lambda: empty_counts("account"))
    tools: pd.DataFrame = field(default_factory=lambda: empty_counts("tool"))
    known_tools: frozenset[ToolKey] = frozenset()
    account_since: Mapping[str, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, columns in (("accounts", ACCOUNT_COLUMNS), ("tools", TOOL_COLUMNS)):
            frame: pd.DataFrame = getattr(self, name)
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise InvalidObservationsError(f"{name} lacks columns {missing}; needs {columns}")
            if len(frame) and int(frame["start"].max()) >= self.end_s:
                raise InvalidObservationsError(
                    f"{name} holds counts at or after the window's end {self.window_end}"
                )
        if self.window_end <= self.window_start:
            raise InvalidObservationsError(f"empty window {self.window_start}..{self.window_end}")

    @property
    def start_s(self) -> int:
        """The judged window's start, in epoch seconds."""
        return epoch_s(self.window_start)

    @property
    def end_s(self) -> int:
        """The judged window's end, in epoch seconds."""
        return epoch_s(self.window_end)


@dataclass(frozen=True)
class Assessment:
    """One judged series in one window: what was seen against what would have fired.

    The backtest plots these (the baseline and threshold bands); ``judge`` keeps the fired ones.
    """

    account_id: str
    server: str | None
    tool: str | None
    observed: float
    baseline: float
    threshold: float
    fired: bool


class Detector(ABC):
    """One kind of anomaly.

    Subclasses set ``name`` (the contract's ``type``) and implement ``assess``. They are
    constructed with their settings and keep no state between calls: judging the same
    observations twice returns the same anomalies, with the same fingerprints.
    """

    name: ClassVar[AnomalyType]

    @property
    def levels(self) -> frozenset[Level]:
        """The count levels ``Observations`` must carry for this detector."""
        return frozenset({"account"})

    @property
    @abstractmethod
    def window_s(self) -> int:
        """The window this detector judges, in seconds."""

    @property
    @abstractmethod
    def lookback_s(self) -> int:
        """How much history before a window ``Observations`` must carry, in seconds."""

    def history_starts(self, window_start_s: int) -> list[int] | None:
        """The window starts (epoch seconds) this detector reads for the window at
        ``window_start_s``, itself included; None for every window of the look-back.

        A caller may hand over only these windows' counts, which makes reading cheaper.
        """
        return None

    @abstractmethod
    def assess(self, observations: Observations) -> list[tuple[Assessment, Anomaly | None]]:
        """Judge every series of the window; pair each assessment with its anomaly if it fired.

        Raises:
            InvalidObservationsError: the observations do not fit this detector's window.
        """

    def judge(self, observations: Observations) -> list[Anomaly]:
        """The anomalies of the window, ordered by account, server and tool.

        Raises:
            InvalidObservationsError: the observations do not fit this detector's window.
        """
        return [anomaly for _, anomaly in self.assess(observations) if anomaly is not None]

    def _check_window(self, observations: Observations) -> None:
        length = observations.end_s - observations.start_s
        if length != self.window_s or observations.start_s % self.window_s:
            raise InvalidObservationsError(
                f"{self.name} judges aligned {self.window_s} s windows; got "
                f"{observations.window_start}..{observations.window_end}"
            )


def epoch_s(value: datetime) -> int:
    """Whole seconds since the Unix epoch of an aware time."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass an aware UTC time")
    return math.floor(value.timestamp())


def from_epoch_s(value: int) -> datetime:
    """The aware UTC time of ``value`` epoch seconds."""
    return datetime.fromtimestamp(value, UTC)


def empty_counts(level: Level) -> pd.DataFrame:
    """An empty counts frame of ``level`` with the right columns."""
    columns = ACCOUNT_COLUMNS if level == "account" else TOOL_COLUMNS
    return pd.DataFrame({c: pd.Series(dtype="object" if c in _TEXT else "int64") for c in columns})


_TEXT: Final = frozenset({"account_id", "server", "tool"})


def severity_for(
    observed: float, baseline: float, threshold: float, medium: float, high: float
) -> Severity:
    """How far past the threshold an observation is, as the contract's severity.

    The measure is the rise over the baseline in units of the smallest alarming rise
    (``threshold - baseline``): 1x is just alarming, ``medium``x and ``high``x step it up.
    """
    needed = threshold - baseline
    excess = (observed - baseline) / needed if needed > 0 else math.inf
    if excess >= high:
        return "high"
    if excess >= medium:
        return "medium"
    return "low"


def describe_window(start: datetime, end: datetime) -> str:
    """``between 10:00 and 11:00 UTC on 2026-06-19``, for summaries."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    return f"between {start:%H:%M} and {end:%H:%M} UTC on {start:%Y-%m-%d}"
