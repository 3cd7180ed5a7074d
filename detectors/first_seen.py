"""``new_tool``: an account uses a (server, tool) pair for the first time.

The caller hands the pairs already known before the window (``Observations.known_tools``) and
when each account was first seen; every pair of the window that is not known is new. It is
reported unless the account is still in its warm-up (``warmup_s`` since it was first seen): a
new account sets up many tools at once, which are learned, not reported. Either way the caller
adds the pair to what is known, so a pair is reported once, ever; the anomaly's fingerprint
leaves the window out for the same reason.
"""

from __future__ import annotations

from datetime import timedelta

from .anomaly import Anomaly
from .base import Assessment, Detector, Level, Observations, ToolKey, describe_window
from .config import NewToolConfig


class NewToolDetector(Detector):
    """Judges the (server, tool) pairs each account used in a window."""

    name = "new_tool"

    def __init__(self, config: NewToolConfig) -> None:
        self.config = config

    @property
    def levels(self) -> frozenset[Level]:
        return frozenset({"tool"})

    @property
    def window_s(self) -> int:
        return self.config.window_s

    @property
    def lookback_s(self) -> int:
        return self.config.lookback_s

    def unknown_pairs(self, observations: Observations) -> list[ToolKey]:
        """The pairs used in the window that are not known yet: what the caller must learn."""
        frame = observations.tools
        current = frame[(frame["start"] == observations.start_s) & (frame["calls"] > 0)]
        seen = {
            (str(a), str(s), str(t))
            for a, s, t in zip(
                current["account_id"], current["server"], current["tool"], strict=True
            )
        }
        return sorted(seen - observations.known_tools)

    def assess(self, observations: Observations) -> list[tuple[Assessment, Anomaly | None]]:
        self._check_window(observations)
        frame = observations.tools
        current = frame[frame["start"] == observations.start_s]
        calls_of = {
            (str(a), str(s), str(t)): int(c)
            for a, s, t, c in zip(
                current["account_id"],
                current["server"],
                current["tool"],
                current["calls"],
                strict=True,
            )
        }
        results: list[tuple[Assessment, Anomaly | None]] = []
        for account_id, server, tool in self.unknown_pairs(observations):
            config = self.config.for_account(account_id)
            since = observations.account_since.get(account_id, observations.window_start)
            if observations.window_start - since < timedelta(seconds=config.warmup_s):
                continue  # still warming up: learned, not reported
            calls = calls_of[(account_id, server, tool)]
            assessment = Assessment(account_id, server, tool, calls, 0.0, 1.0, True)
            when = describe_window(observations.window_start, observations.window_end)
            anomaly = Anomaly(
                type=self.name,
                account_id=account_id,
                server=server,
                tool=tool,
                window_start=observations.window_start,
                window_end=observations.window_end,
                observed=float(calls),
                baseline=0.0,
                threshold=1.0,
                severity=config.severity,
                summary=(
                    f"Account {account_id} used {server}/{tool} for the first time "
                    f"({calls:,} calls {when}); confirm the tool is expected for this account."
                ),
            )
            results.append((assessment, anomaly))
        return results
