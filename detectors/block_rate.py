"""``block_rate_jump``: the share of denied calls rises clearly above the account's usual share.

The usual share is pooled over the look-back (denied / calls of the previous ``baseline_days``),
never below ``min_baseline_rate``. The window's share is tested against it with a one-sided
binomial z-test (with a continuity correction), so the number of calls matters: 3 of 4 denied
is not an alarm, 300 of 400 is. A window fires when it has ``min_calls`` calls, its share rose
``min_rise_pp`` percentage points or more, and ``z >= min_z``; ``threshold`` is the smallest
share that clears both of the latter.
"""

from __future__ import annotations

import math

import pandas as pd

from .anomaly import Anomaly
from .base import Assessment, Detector, Observations, describe_window, severity_for
from .config import BlockRateConfig


class BlockRateJumpDetector(Detector):
    """Judges each account's share of denied calls in a window."""

    name = "block_rate_jump"

    def __init__(self, config: BlockRateConfig) -> None:
        self.config = config

    @property
    def window_s(self) -> int:
        return self.config.window_s

    @property
    def lookback_s(self) -> int:
        return self.config.lookback_s

    def assess(self, observations: Observations) -> list[tuple[Assessment, Anomaly | None]]:
        self._check_window(observations)
        frame = observations.accounts
        start = observations.start_s
        current = frame[frame["start"] == start]
        if current.empty:
            return []
        since = start - self.config.lookback_s
        history = frame[(frame["start"] < start) & (frame["start"] >= since)]
        pooled: pd.DataFrame = history.groupby("account_id")[["calls", "denied"]].sum()
        results: list[tuple[Assessment, Anomaly | None]] = []
        base = {
            str(a): (int(c), int(d))
            for a, c, d in zip(
                pooled.index.tolist(),
                pooled["calls"].tolist(),
                pooled["denied"].tolist(),
                strict=True,
            )
        }
        current = current.sort_values("account_id")
        for account_id, calls, denied in zip(
            current["account_id"].astype(str).tolist(),
            current["calls"].astype(int).tolist(),
            current["denied"].astype(int).tolist(),
            strict=True,
        ):
            config = self.config.for_account(account_id)
            base_calls, base_denied = base.get(account_id, (0, 0))
            if calls < config.min_calls or base_calls < config.min_baseline_calls:
                continue  # too few calls now, or not enough history to know the usual share
            base_rate = base_denied / base_calls
            floored = max(base_rate, config.min_baseline_rate)
            threshold = _threshold(floored, calls, config)
            rate = denied / calls
            fired = rate >= threshold
            assessment = Assessment(account_id, None, None, rate, floored, threshold, fired)
            anomaly = None
            if fired:
                anomaly = Anomaly(
                    type=self.name,
                    account_id=account_id,
                    server=None,
                    tool=None,
                    window_start=observations.window_start,
                    window_end=observations.window_end,
                    observed=round(rate, 4),
                    baseline=round(floored, 4),
                    threshold=round(threshold, 4),
                    severity=severity_for(
                        rate, floored, threshold, config.severity_medium, config.severity_high
                    ),
                    summary=_summary(observations, account_id, denied, calls, rate, floored),
                )
            results.append((assessment, anomaly))
        return results


def _threshold(base_rate: float, calls: int, config: BlockRateConfig) -> float:
    """The smallest share of ``calls`` that rose enough points and is significant."""
    by_points = base_rate + config.min_rise_pp / 100
    # One-sided binomial z with continuity correction, solved for the share:
    # (x - 0.5 - n p) / sqrt(n p (1 - p)) >= z  <=>  x / n >= p + (z sqrt(n p (1-p)) + 0.5) / n
    spread = math.sqrt(calls * base_rate * (1 - base_rate))
    by_test = base_rate + (config.min_z * spread + 0.5) / calls
    return min(max(by_points, by_test), 1.0)


def _summary(
    observations: Observations,
    account_id: str,
    denied: int,
    calls: int,
    rate: float,
    base_rate: float,
) -> str:
    when = describe_window(observations.window_start, observations.window_end)
    return (
        f"{denied:,} of account {account_id}'s {calls:,} calls were denied {when} "
        f"({rate:.0%}, up {100 * (rate - base_rate):.0f} points from its usual {base_rate:.1%}); "
        "review the denied calls for a misbehaving agent or a policy change."
    )
