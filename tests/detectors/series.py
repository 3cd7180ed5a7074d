"""Hand-built count series for the detectors' unit tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import pandas as pd

from detectors import Observations, epoch_s

HOUR = 3600
DAY = 86_400
# A Wednesday, so that "Monday" and "the weekend" are easy to place around it.
WED = datetime(2026, 6, 17, tzinfo=UTC)


def hourly(
    account_id: str,
    start: datetime,
    hours: int,
    calls: Callable[[datetime], int],
    denied: Callable[[datetime], int] = lambda _t: 0,
) -> list[dict[str, object]]:
    """One row per hour from ``start`` for ``hours`` hours; ``calls(t)`` gives the count."""
    rows = []
    for h in range(hours):
        t = start + timedelta(hours=h)
        rows.append(
            {"account_id": account_id, "start": epoch_s(t), "calls": calls(t), "denied": denied(t)}
        )
    return [r for r in rows if int(str(r["calls"])) > 0]


def observations(
    window_start: datetime,
    rows: Iterable[dict[str, object]],
    *,
    window_s: int = HOUR,
    tools: Iterable[dict[str, object]] = (),
    known: frozenset[tuple[str, str, str]] = frozenset(),
    since: dict[str, datetime] | None = None,
) -> Observations:
    """Observations of the window at ``window_start``, dropping rows after it (no peeking)."""
    end = window_start + timedelta(seconds=window_s)
    accounts = pd.DataFrame(list(rows), columns=["account_id", "start", "calls", "denied"])
    accounts = accounts[accounts["start"] < epoch_s(end)]
    tool_frame = pd.DataFrame(
        list(tools), columns=["account_id", "server", "tool", "start", "calls", "denied"]
    )
    return Observations(
        window_start=window_start,
        window_end=end,
        accounts=accounts.astype({"start": "int64", "calls": "int64", "denied": "int64"}),
        tools=tool_frame.astype({"start": "int64", "calls": "int64", "denied": "int64"}),
        known_tools=known,
        account_since=since or {},
    )


def daily_rhythm(t: datetime, peak: int = 1000) -> int:
    """A working-day curve: quiet nights, a morning ramp to ``peak`` at 09-17 UTC."""
    if t.weekday() >= 5:
        return peak // 10
    shape = {7: 0.2, 8: 0.6}.get(t.hour, 1.0 if 9 <= t.hour < 17 else 0.05)
    return max(1, int(peak * shape))
