"""The detector timetable: the one module that touches APScheduler (which has no type hints).

Each enabled detector runs on its own interval. A run never overlaps the previous one of the
same detector (``max_instances=1``), and runs missed while the loop was busy are coalesced into
one, not stacked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)


class DetectorJobs:
    """Runs ``run(detector_name)`` every ``intervals[detector_name]`` seconds."""

    def __init__(self, run: Callable[[str], Awaitable[None]]) -> None:
        self._run = run
        self._scheduler: Any = AsyncIOScheduler(timezone=UTC)
        self._intervals: dict[str, float] = {}

    def start(self, intervals: Mapping[str, float]) -> None:
        """Schedule each detector (the first run is now) and start; call on the running loop."""
        self._scheduler.start()
        self.reschedule(intervals)

    def reschedule(self, intervals: Mapping[str, float]) -> None:
        """Apply a new timetable: add, drop or re-time jobs (used by SIGHUP)."""
        for name in list(self._intervals):
            if name not in intervals:
                self._scheduler.remove_job(name)
                del self._intervals[name]
        for name, seconds in intervals.items():
            if self._intervals.get(name) == seconds:
                continue
            if name in self._intervals:
                self._scheduler.remove_job(name)
            self._scheduler.add_job(
                self._run,
                IntervalTrigger(seconds=seconds, timezone=UTC),
                args=[name],
                id=name,
                name=f"detector {name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                next_run_time=datetime.now(UTC),
            )
            self._intervals[name] = seconds
        log.debug("detector timetable: %s", self._intervals)

    def shutdown(self) -> None:
        """Stop starting runs; a run in progress finishes on its own."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
