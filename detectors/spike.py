"""``call_spike``: an unusual rise in an account's call volume, against its own history.

The baseline is the median of the same window on previous days of the same kind, and the
spread is the MAD of those days. The daily and weekly rhythm is in it: Monday 09:00 is compared
with the previous working days' 09:00, which a quiet weekend cannot drag down, and Saturday
03:00 with earlier weekends' 03:00. With too few such days the series is not judged, unless
``recent_windows`` lets the previous windows stand in. Medians ignore an earlier spike or a
quiet night; a floor on the baseline keeps an empty history from making a spike by itself.

A window fires when it clears three guards at once, which ``threshold`` folds into one number:
at least ``min_calls``, at least ``min_ratio`` times the baseline, and a robust score of at
least ``min_score`` (rise over the spread, the spread never below Poisson noise).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import pandas as pd

from .anomaly import Anomaly
from .base import Assessment, Detector, Level, Observations, describe_window, severity_for
from .config import DAY_S, CallSpikeConfig

# MAD times this estimates the standard deviation of normally distributed counts.
_MAD_TO_SIGMA: Final = 1.4826


class CallSpikeDetector(Detector):
    """Judges each account's (and, if ``per_tool``, each tool's) call volume in a window."""

    name = "call_spike"

    def __init__(self, config: CallSpikeConfig) -> None:
        self.config = config

    @property
    def levels(self) -> frozenset[Level]:
        return frozenset({"account", "tool"} if self.config.per_tool else {"account"})

    @property
    def window_s(self) -> int:
        return self.config.window_s

    @property
    def lookback_s(self) -> int:
        return self.config.lookback_s

    def history_starts(self, window_start_s: int) -> list[int]:
        cfg = self.config
        days = [window_start_s - d * DAY_S for d in range(cfg.lookback_days, 0, -1)]
        recent = [window_start_s - n * cfg.window_s for n in range(cfg.recent_windows, 0, -1)]
        return sorted({*days, *recent, window_start_s})

    def assess(self, observations: Observations) -> list[tuple[Assessment, Anomaly | None]]:
        self._check_window(observations)
        results = self._assess_level(observations, observations.accounts, ["account_id"])
        if self.config.per_tool:
            keys = ["account_id", "server", "tool"]
            results += self._assess_level(observations, observations.tools, keys)
        return results

    def _assess_level(
        self, observations: Observations, frame: pd.DataFrame, keys: list[str]
    ) -> list[tuple[Assessment, Anomaly | None]]:
        start = observations.start_s
        current = frame[frame["start"] == start]
        if current.empty:
            return []  # a window with no calls cannot be a rise
        history = frame[frame["start"].isin(self.history_starts(start)) & (frame["start"] < start)]
        by_key = {
            _key(k): dict(zip(g["start"].tolist(), g["calls"].tolist(), strict=True))
            for k, g in history.groupby(keys, sort=False)
        }
        results: list[tuple[Assessment, Anomaly | None]] = []
        current = current.sort_values(keys)
        rows = zip(
            *(current[k].astype(str).tolist() for k in keys),
            current["calls"].astype(int).tolist(),
            strict=True,
        )
        for *names, observed in rows:
            key = tuple(names)
            account_id = key[0]
            server, tool = (key[1], key[2]) if len(key) == 3 else (None, None)
            config = self.config.for_account(account_id)
            reference = self._reference(start, by_key.get(key, {}))
            if reference is None:
                continue  # not enough history to know what is usual yet
            baseline, threshold = _threshold(reference, config)
            fired = observed >= threshold
            assessment = Assessment(account_id, server, tool, observed, baseline, threshold, fired)
            anomaly = None
            if fired:
                anomaly = Anomaly(
                    type=self.name,
                    account_id=account_id,
                    server=server,
                    tool=tool,
                    window_start=observations.window_start,
                    window_end=observations.window_end,
                    observed=float(observed),
                    baseline=round(baseline, 2),
                    threshold=round(threshold, 2),
                    severity=severity_for(
                        observed,
                        baseline,
                        threshold,
                        config.severity_medium,
                        config.severity_high,
                    ),
                    summary=_summary(observations, account_id, server, tool, observed, baseline),
                )
            results.append((assessment, anomaly))
        return results

    def _reference(self, start: int, calls: dict[int, int]) -> list[int] | None:
        """The comparable earlier windows' counts, or None while the history is too short.

        A window before the series' first call (among the windows read) does not count as a
        quiet one: the account (or tool) did not exist yet.
        """
        if not calls:
            return None
        first = min(calls)
        cfg = self.config
        seasonal: list[int] = []
        for day in range(1, cfg.lookback_days + 1):
            earlier = start - day * DAY_S
            if earlier < first or len(seasonal) == cfg.seasonal_days:
                break
            if cfg.weekly and _is_weekend(earlier) != _is_weekend(start):
                continue
            seasonal.append(calls.get(earlier, 0))
        if len(seasonal) >= cfg.min_seasonal_days:
            return seasonal
        recent = [
            calls.get(start - n * cfg.window_s, 0)
            for n in range(1, cfg.recent_windows + 1)
            if start - n * cfg.window_s >= first
        ]
        return recent if recent and len(recent) * 2 >= cfg.recent_windows else None


def _threshold(reference: list[int], config: CallSpikeConfig) -> tuple[float, float]:
    """The floored baseline and the smallest count that clears every guard."""
    values = np.asarray(reference, dtype=float)
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    baseline = max(median, config.min_baseline)
    # Counts are at least Poisson-noisy: the spread is never taken below sqrt(baseline).
    spread = max(_MAD_TO_SIGMA * mad, math.sqrt(baseline))
    threshold = max(
        float(config.min_calls),
        config.min_ratio * baseline,
        baseline + config.min_score * spread,
    )
    return baseline, threshold


def _is_weekend(epoch: int) -> bool:
    # 1970-01-01 was a Thursday (weekday 3, counting Monday as 0).
    return (epoch // DAY_S + 3) % 7 >= 5


def _key(value: object) -> tuple[str, ...]:
    if isinstance(value, tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


def _summary(
    observations: Observations,
    account_id: str,
    server: str | None,
    tool: str | None,
    observed: int,
    baseline: float,
) -> str:
    what = f"{server}/{tool} calls" if tool is not None else "calls"
    when = describe_window(observations.window_start, observations.window_end)
    return (
        f"Account {account_id} made {observed:,} {what} {when}, "
        f"{observed / baseline:.1f}x its usual {baseline:,.0f}; "
        "check for a runaway agent or a leaked API key."
    )
