"""Where the detectors meet the database and the clock: shared by the daemon and ``detect``.

The daemon builds one ``Detection`` and, on each detector's interval, calls ``refresh(now)``,
``due_windows(name, last_judged_end, now)`` and ``judge(name, start, end)`` for each due window;
it keeps the last judged window, the cooldown, the dedupe and the sending to itself.
``backtest()`` replays a range of history window by window, exactly as those runs would have
judged it, from the activity log itself, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Connection, Engine

from delivery import payloads
from detectors import (
    DAY_S,
    DETECTOR_NAMES,
    Anomaly,
    Assessment,
    Detector,
    DetectorsConfig,
    NewToolDetector,
    Observations,
    UnknownDetectorError,
    build_detector,
    empty_counts,
    epoch_s,
    from_epoch_s,
)

from .rollups import (
    ActivityCounts,
    DbKnownTools,
    KnownTools,
    MemoryKnownTools,
    RefreshStats,
    Rollups,
)

Window = tuple[datetime, datetime]
#: ``progress(detector, windows_done, windows_total)``, called now and then by ``backtest``.
Progress = Callable[[str, int, int], None]


def anomaly_data(anomaly: Anomaly, detected_at: datetime) -> payloads.Data:
    """The contract's ``anomaly.detected`` data of ``anomaly``, judged at ``detected_at``."""
    return payloads.anomaly_detected(
        anomaly_id=anomaly.anomaly_id,
        account_id=anomaly.account_id,
        type=anomaly.type,
        severity=anomaly.severity,
        window_start=anomaly.window_start,
        window_end=anomaly.window_end,
        observed=anomaly.observed,
        baseline=anomaly.baseline,
        threshold=anomaly.threshold,
        server=anomaly.server,
        tool=anomaly.tool,
        summary=anomaly.summary,
        detected_at=detected_at,
    )


def closed_windows(
    window_s: int, after: datetime | None, now: datetime, settle_delay_s: int
) -> list[Window]:
    """The UTC-aligned windows that start at or after ``after`` and whose end plus the settle
    delay has passed by ``now``; without ``after``, only the latest such window."""
    last_end = (epoch_s(now) - settle_delay_s) // window_s * window_s
    first = last_end - window_s if after is None else _ceil(epoch_s(after), window_s)
    return [(from_epoch_s(s), from_epoch_s(s + window_s)) for s in range(first, last_end, window_s)]


def _ceil(value: int, size: int) -> int:
    """The first multiple of ``size`` at or after ``value``."""
    return -(-value // size) * size


class Detection:
    """The enabled detectors over one database's rollups. The caller owns the engine."""

    def __init__(self, engine: Engine, config: DetectorsConfig) -> None:
        self.config = config
        self.rollups = Rollups(engine)
        self.known_tools = DbKnownTools(engine)
        self._detectors = {
            name: build_detector(name, config)
            for name in DETECTOR_NAMES
            if config.detector(name).enabled
        }

    def detector_names(self) -> list[str]:
        """The enabled detectors, in the contract's order."""
        return list(self._detectors)

    def intervals(self) -> dict[str, float]:
        """How often the daemon runs each enabled detector, in seconds."""
        return {name: self.config.detector(name).interval_s for name in self._detectors}

    def detector(self, name: str) -> Detector:
        """The enabled detector called ``name``.

        Raises:
            UnknownDetectorError: no enabled detector has that name.
        """
        try:
            return self._detectors[name]
        except KeyError:
            raise UnknownDetectorError(
                f"no enabled detector {name!r}; enabled: {', '.join(self._detectors) or 'none'}"
            ) from None

    def refresh(self, now: datetime) -> RefreshStats:
        """Bring the rollups up to date; reads only rows since the last refresh (minus the
        re-read margin). Malformed rows are counted in the result and skipped."""
        return self.rollups.refresh(now, self.config.reread_margin_s)

    def due_windows(
        self, name: str, last_judged_end: datetime | None, now: datetime
    ) -> list[Window]:
        """The closed windows of detector ``name`` after ``last_judged_end``, oldest first.

        A window is due once its end plus ``settle_delay_s`` has passed. Without
        ``last_judged_end`` (a first start) only the latest closed window is due.
        """
        return closed_windows(
            self.detector(name).window_s, last_judged_end, now, self.config.settle_delay_s
        )

    def judge(
        self,
        name: str,
        window_start: datetime,
        window_end: datetime,
        *,
        accounts: Collection[str] | None = None,
        known_tools: KnownTools | None = None,
        conn: Connection | None = None,
    ) -> list[Anomaly]:
        """The anomalies of one closed window, from the rollups up to ``window_end`` only.

        For ``new_tool`` the pairs first seen in the window are learned, in
        ``known_tools`` (default: the database's, seeded on first use from everything before
        the window; written in ``conn``'s transaction if given, else committed before this
        returns, so a restart never reports them again).
        """
        detector = self.detector(name)
        if isinstance(detector, NewToolDetector) and known_tools is None:
            self.known_tools.ensure_seeded(window_start)
            known_tools = self.known_tools
        observations = _observe(
            detector, self.rollups.counts, window_start, window_end, accounts, known_tools
        )
        found = detector.judge(observations)
        if isinstance(detector, NewToolDetector) and known_tools is not None:
            pairs = detector.unknown_pairs(observations)
            if known_tools is self.known_tools:
                self.known_tools.learn(pairs, window_start, conn=conn)
            else:
                known_tools.learn(pairs, window_start)
        return found


def _observe(
    detector: Detector,
    counts: Callable[..., pd.DataFrame],
    window_start: datetime,
    window_end: datetime,
    accounts: Collection[str] | None,
    known_tools: KnownTools | None,
) -> Observations:
    since, until = epoch_s(window_start) - detector.lookback_s, epoch_s(window_end)
    starts = detector.history_starts(epoch_s(window_start))
    frames = {
        level: counts(level, detector.window_s, since, until, accounts, starts)
        for level in detector.levels
    }
    tools = frames.get("tool", empty_counts("tool"))
    known, account_since = (
        known_tools.snapshot(set(tools["account_id"])) if known_tools else (frozenset(), {})
    )
    return Observations(
        window_start=window_start,
        window_end=window_end,
        accounts=frames.get("account", empty_counts("account")),
        tools=tools,
        known_tools=known,
        account_since=account_since,
    )


# -- the backtest ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """An anomaly the backtest found, with when the scheduled run would have judged it."""

    anomaly: Anomaly
    detected_at: datetime


@dataclass
class BacktestResult:
    """What ``backtest`` found, and what it judged (for the plot)."""

    found: list[Found] = field(default_factory=list)
    windows: dict[str, int] = field(default_factory=dict)
    #: Per detector, every (window_start, assessment) of a series that had calls.
    assessments: dict[str, list[tuple[datetime, Assessment]]] = field(default_factory=dict)
    #: Calls and denied calls per account and hour over the range, for the plot.
    hourly: pd.DataFrame = field(default_factory=lambda: empty_counts("account"))


def backtest(
    engine: Engine,
    config: DetectorsConfig,
    start: datetime,
    end: datetime,
    *,
    accounts: Collection[str] | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Replay ``[start, end)`` window by window with the configured detectors; writes nothing.

    Each window is judged with the counts before its end only, and reported as detected at its
    end plus the settle delay. Counts come from the activity log with ``GROUP BY``, one day per
    query (the rollups may be missing or behind); the known pairs for ``new_tool`` are those
    used before ``start``, then learned in memory as the replay goes.
    """
    detectors = [build_detector(n, config) for n in DETECTOR_NAMES if config.detector(n).enabled]
    result = BacktestResult()
    plan: dict[str, tuple[int, int]] = {d.name: _span_of(d, start, end) for d in detectors}
    for d in detectors:
        result.windows[d.name] = len(range(*plan[d.name], d.window_s))
        result.assessments[d.name] = []
    data = _gather(ActivityCounts(engine), detectors, plan, start, end, accounts)
    settle = timedelta(seconds=config.settle_delay_s)
    for detector in detectors:
        first, last = plan[detector.name]
        if first >= last:
            continue
        w = detector.window_s
        assessed = result.assessments[detector.name]
        known = MemoryKnownTools(data.seed) if isinstance(detector, NewToolDetector) else None
        windows, frames_of = _slicer(detector, data, first, last)
        for done, s in enumerate(windows, 1):
            window = (from_epoch_s(s), from_epoch_s(s + w))
            sliced = frames_of(s)
            obs = _observe(
                detector, lambda level, *_a, f=sliced: f[level], *window, accounts, known
            )
            for assessment, anomaly in detector.assess(obs):
                assessed.append((window[0], assessment))
                if anomaly is not None:
                    result.found.append(Found(anomaly, window[1] + settle))
            if known is not None and isinstance(detector, NewToolDetector):
                known.learn(detector.unknown_pairs(obs), window[0])
            if progress and done % 24 == 0:
                progress(detector.name, done, len(windows))
        if progress:
            progress(detector.name, len(windows), len(windows))
    result.found.sort(key=lambda f: (f.anomaly.window_start, f.anomaly.account_id, f.anomaly.type))
    result.hourly = data.frames.get(("account", 3600), empty_counts("account"))
    return result


def _slicer(
    detector: Detector, data: _Gathered, first: int, last: int
) -> tuple[list[int], Callable[[int], dict[str, pd.DataFrame]]]:
    """The windows to replay and, for each, its counts (with the look-back, nothing later)."""
    if isinstance(detector, NewToolDetector):
        uses = data.first_uses
        # Only a pair's first window can hold it unknown; the other windows judge nothing.
        windows = sorted(set(uses["start"].tolist())) if len(uses) else []
        return windows, lambda s: {"tool": uses[uses["start"] == s]}
    frames = {level: data.frames[(level, detector.window_s)] for level in detector.levels}

    def frames_of(s: int) -> dict[str, pd.DataFrame]:
        lo, hi = s - detector.lookback_s, s + detector.window_s
        wanted = detector.history_starts(s)
        return {
            level: f[f["start"].isin(wanted)]
            if wanted is not None
            else f[(f["start"] >= lo) & (f["start"] < hi)]
            for level, f in frames.items()
        }

    return list(range(first, last, detector.window_s)), frames_of


def _span_of(detector: Detector, start: datetime, end: datetime) -> tuple[int, int]:
    """The first and last aligned window starts of ``detector`` within [start, end)."""
    w = detector.window_s
    return _ceil(epoch_s(start), w), epoch_s(end) // w * w


@dataclass
class _Gathered:
    frames: dict[tuple[str, int], pd.DataFrame]
    seed: dict[tuple[str, str, str], int]
    first_uses: pd.DataFrame


def _gather(
    source: ActivityCounts,
    detectors: list[Detector],
    plan: dict[str, tuple[int, int]],
    start: datetime,
    end: datetime,
    accounts: Collection[str] | None,
) -> _Gathered:
    """The counts every detector needs, a day per GROUP BY query."""
    needs = {(level, d.window_s) for d in detectors if d.name != "new_tool" for level in d.levels}
    needs.add(("account", 3600))  # the plot's hourly volume
    new_tool = next((d for d in detectors if isinstance(d, NewToolDetector)), None)
    since = min([epoch_s(start)] + [plan[d.name][0] - d.lookback_s for d in detectors])
    until = max([epoch_s(end)] + [plan[d.name][1] for d in detectors])
    frames: dict[tuple[str, int], pd.DataFrame] = {}
    for level, w in needs:
        days = [f for _, _, f in source.days(since, until, level, w, accounts) if len(f)]
        frames[(level, w)] = pd.concat(days, ignore_index=True) if days else empty_counts(level)
    seed: dict[tuple[str, str, str], int] = {}
    first_uses = empty_counts("tool")
    if new_tool is not None:
        first, last = plan[new_tool.name]
        seed = source.first_seen_before(first, accounts)
        uses: list[pd.DataFrame] = []
        seen = set(seed)
        for day in range(first // DAY_S * DAY_S, last, DAY_S):
            lo, hi = max(day, first), min(day + DAY_S, last)
            fresh = {
                k: b for k, b in source.first_buckets(lo, hi, accounts).items() if k not in seen
            }
            if not fresh:
                continue  # the usual day: every pair used is known already
            seen.update(fresh)
            w = new_tool.window_s
            used = source.counts("tool", w, lo, hi, sorted({k[0] for k in fresh}))
            firsts = {k: b // w * w for k, b in fresh.items()}
            keep = [
                firsts.get((str(a), str(sv), str(t))) == int(st)
                for a, sv, t, st in zip(
                    used["account_id"], used["server"], used["tool"], used["start"], strict=True
                )
            ]
            uses.append(used[keep])
        if uses:
            first_uses = pd.concat(uses, ignore_index=True)
    return _Gathered(frames, seed, first_uses)
