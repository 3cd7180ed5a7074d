"""The daemon: scheduled detectors and the blocked/approval hook, through one dispatcher.

::

    activity_log ──┐                  ┌─ detector jobs (APScheduler, one per detector)
    approvals ─────┤ tail (every 1 s) │
    Hooks (in-process) ───────────────┴──► outbox (DB, unique keys) ──► Dispatcher ──► endpoints

Every event is written to the outbox before it is handed to the dispatcher, in the same
transaction as the progress that produced it (the tail's position, the detector's last window),
so a crash or ``kill -9`` loses nothing committed and sends nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy import Engine

from delivery import DeliveryRecord, Dispatcher, format_time

from .anomalies import record
from .config import LoadedSettings, Settings, load_settings
from .detection import Detection, anomaly_data
from .exceptions import ConfigError
from .hooks import Hooks, in_loop
from .jobs import DetectorJobs
from .metrics import Metrics
from .outbox import OutboxEvent, OutboxRelay, insert_new
from .state import detector_runs
from .tail import Tail

log = logging.getLogger("enforgate.daemon")

# How often events refused by a full dispatcher queue are offered again.
_RESEND_INTERVAL_S = 5.0
# After a long outage, judge at most this many missed windows per detector run; the rest
# (older) wait for the next run, so one run stays short.
_MAX_WINDOWS_PER_RUN = 500


class Daemon:
    """One running daemon. Create it, then ``await serve()`` (or ``serve(once=True)``).

    A Python gateway embedding it calls ``daemon.hooks.call_blocked(...)`` and friends.

    Args:
        loaded: the validated settings.
        engine: the migrated database (owned by the caller).
        config_path: re-read on SIGHUP.
        client: the HTTP client for deliveries (default: one the dispatcher owns).
    """

    def __init__(
        self,
        loaded: LoadedSettings,
        engine: Engine,
        *,
        config_path: str | Path | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._loaded = loaded
        self._engine = engine
        self._config_path = config_path
        self._client = client
        self.metrics = Metrics()
        self._refresh_lock = threading.Lock()
        self._stopping = asyncio.Event()
        #: Set once the daemon is running and :attr:`hooks` can be called.
        self.started = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._apply(loaded.settings)
        self.dispatcher = Dispatcher(
            engine, loaded.settings.delivery, client=client, observer=self._observe
        )
        self.relay = OutboxRelay(engine, self.dispatcher)
        self._hook_queue: asyncio.Queue[OutboxEvent] | None = None
        self._hooks: Hooks | None = None
        self._jobs: DetectorJobs | None = None

    @property
    def settings(self) -> Settings:
        return self._loaded.settings

    @property
    def hooks(self) -> Hooks:
        """The in-process hook; available once ``serve()`` has started."""
        if self._hooks is None:
            raise RuntimeError("the daemon has not started yet")
        return self._hooks

    def _apply(self, settings: Settings) -> None:
        """Build what depends on reloadable settings (detectors, tail, timings)."""
        s = settings.scheduler
        self.detection = Detection(self._engine, settings.detectors)
        self.tail = Tail(
            self._engine,
            start=s.tail_start,
            lookback=timedelta(seconds=s.tail_lookback_s),
            gap_timeout=timedelta(seconds=s.tail_gap_timeout_s),
            batch=s.tail_batch,
        )

    # -- life cycle ---------------------------------------------------------------------------

    async def serve(self, *, once: bool = False, handle_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT or :meth:`request_stop` (with ``once``: until what is due
        is done); returns the exit code.

        Args:
            once: judge what is due, read the tail once, wait for the deliveries, return.
            handle_signals: install the SIGTERM/SIGINT/SIGHUP handlers (main thread only; a
                gateway embedding the daemon in another thread passes False).
        """
        self._loop = asyncio.get_running_loop()
        # A run-once (cron) job is gone before anything could scrape it: no metrics port.
        await self._start(serve_metrics=not once)
        try:
            if once:
                await self.run_once()
                return 0
            if handle_signals:
                self._install_signals()
            self._start_work()
            self.started.set()
            await self._stopping.wait()
            return 0
        finally:
            await self._stop()

    async def _start(self, *, serve_metrics: bool = True) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        self._hook_queue = asyncio.Queue(maxsize=s.scheduler.hook_queue_size)
        self._hooks = Hooks(loop, self._hook_queue, on_drop=self.metrics.hook_dropped.inc)
        await self.dispatcher.start()
        pending = await asyncio.to_thread(self.relay.load_pending, 1000)
        if pending:
            log.info("re-sending %d events left pending by the last run", len(pending))
            self.relay.send(pending)
        metrics_on = s.metrics.enabled and serve_metrics
        if metrics_on:
            self.metrics.serve(s.metrics.host, s.metrics.port)
        detectors = self.detection.intervals()
        log.info(
            "enforgate-webhooks running: database %s; detectors %s; tail every %ss; metrics %s",
            _display_url(self._engine),
            ", ".join(f"{n} every {i:g}s" for n, i in detectors.items()) or "none",
            f"{s.scheduler.tail_interval_s:g}",
            f"http://{s.metrics.host}:{s.metrics.port}/metrics" if metrics_on else "off",
        )

    async def run_once(self) -> None:
        """Judge every due window, read the tail once, wait for the deliveries."""
        for name in self.detection.intervals():
            await self.run_detector(name)
        await self.poll_tail()
        await self._drain_hooks()
        await self.dispatcher.drain(timeout=self.settings.delivery.timeout_s * 2 + 5)
        await self._flush()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))

    def _start_work(self) -> None:
        loop = asyncio.get_running_loop()
        self._jobs = DetectorJobs(self.run_detector)
        self._jobs.start(self.detection.intervals())
        self._tasks = [
            loop.create_task(
                self._every(lambda: self.settings.scheduler.tail_interval_s, self.poll_tail),
                name="tail",
            ),
            loop.create_task(self._mark_done_loop(), name="mark-done"),
            loop.create_task(self._every(lambda: _RESEND_INTERVAL_S, self._resend), name="resend"),
            loop.create_task(self._every(lambda: 3600.0, self._housekeeping), name="housekeeping"),
            loop.create_task(self._hook_consumer(), name="hooks"),
        ]

    def request_stop(self) -> None:
        """Stop taking work; ``serve()`` then finishes in-flight deliveries and returns.

        Safe to call from any thread.
        """
        loop = self._loop
        if loop is not None and not in_loop(loop):
            loop.call_soon_threadsafe(self.request_stop)
            return
        if not self._stopping.is_set():
            log.info(
                "stopping: finishing in-flight deliveries (deadline %ss)",
                f"{self.settings.scheduler.shutdown_deadline_s:g}",
            )
            self._stopping.set()

    async def _stop(self) -> None:
        if self._jobs is not None:
            self._jobs.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._drain_hooks()
        await self.dispatcher.aclose(self.settings.scheduler.shutdown_deadline_s)
        await self._flush()
        log.info("stopped")

    async def reload(self) -> None:
        """SIGHUP: re-read the config; an invalid one is refused and the old one keeps running."""
        try:
            loaded = await asyncio.to_thread(load_settings, self._config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            return
        if loaded.settings.database != self.settings.database:
            log.warning("reload: database settings change only on restart; kept the old ones")
            loaded = LoadedSettings(
                loaded.settings.model_copy(update={"database": self.settings.database}),
                loaded.source,
                loaded.overrides,
            )
        self._loaded = loaded
        self._apply(loaded.settings)
        self.dispatcher.reconfigure(loaded.settings.delivery)
        if self._jobs is not None:
            self._jobs.reschedule(self.detection.intervals())
        log.info("reloaded the config from %s", loaded.source)

    # -- the work -----------------------------------------------------------------------------

    async def poll_tail(self) -> None:
        """Read the activity log and approvals once and send what is new."""
        self.metrics.queue_depth.set(self.dispatcher.queue_depth)
        self.metrics.dropped.set(self.dispatcher.dropped)
        self.metrics.outbox_pending.set(self.relay.in_flight)
        try:
            result = await asyncio.to_thread(self.tail.poll)
        except Exception as exc:  # the database may be away; the next poll retries
            self.metrics.tail_errors.inc()
            log.error("tail poll failed: %s: %s", type(exc).__name__, exc)
            return
        if result.malformed:
            self.metrics.malformed_rows.inc(result.malformed)
        if result.lag_s is not None:
            self.metrics.tail_lag.set(result.lag_s)
        for _, event in result.events:
            self.metrics.tail_events.labels(event.event_type).inc()
        self.relay.send(result.events)

    async def run_detector(self, name: str) -> None:
        """One run of one detector over the windows closed since its last run."""
        started = time.monotonic()
        now = datetime.now(UTC)
        try:
            inserted, judged, found = await asyncio.to_thread(self._judge_due, name, now)
        except Exception as exc:  # logged and retried by the next run; nothing was committed
            duration = time.monotonic() - started
            self.metrics.detector_runs.labels(name, "failed").inc()
            log.error(
                "detector %s failed after %.2fs: %s: %s", name, duration, type(exc).__name__, exc
            )
            await asyncio.to_thread(self._save_run, name, now, duration, exc)
            return
        duration = time.monotonic() - started
        await asyncio.to_thread(self._save_run, name, now, duration, None, anomalies=found)
        self.metrics.detector_seconds.labels(name).observe(duration)
        self.metrics.detector_runs.labels(name, "ok").inc()
        log.log(
            logging.INFO if judged else logging.DEBUG,  # a run with nothing due is routine
            "detector %s: %d windows judged, %d anomalies, %d sent, %.3fs",
            name,
            judged,
            found,
            len(inserted),
            duration,
        )
        self.relay.send(inserted)

    def _judge_due(
        self, name: str, now: datetime
    ) -> tuple[list[tuple[int, OutboxEvent]], int, int]:
        s = self.settings.scheduler
        with self._refresh_lock:  # two detectors' runs share one rollup refresh at a time
            self.detection.refresh(now)
        with self._engine.connect() as conn:
            last = conn.execute(
                sa.select(detector_runs.c.last_window_end).where(detector_runs.c.detector == name)
            ).scalar()
        windows = self.detection.due_windows(name, last, now)
        if last is None:
            windows = windows[-1:]  # a first start judges from now on, not the whole history
        windows = windows[:_MAX_WINDOWS_PER_RUN]
        sent: list[tuple[int, OutboxEvent]] = []
        found_total = 0
        for window_start, window_end in windows:
            # One transaction per window: the tools new_tool learns, the anomalies, their
            # outbox rows and the detector's progress commit together or not at all.
            with self._engine.begin() as conn:
                found = self.detection.judge(name, window_start, window_end, conn=conn)
                found_total += len(found)
                recorded, events = record(
                    conn,
                    [(a, anomaly_data(a, now)) for a in found],
                    now,
                    cooldown=timedelta(seconds=s.cooldown_s),
                    max_age=timedelta(seconds=s.max_catchup_age_s),
                )
                sent += insert_new(conn, events, now)
                _save_window(conn, name, window_end)
            for rec in recorded:
                self.metrics.anomalies.labels(rec.data["type"], rec.outcome.value).inc()
                log.info(
                    "anomaly %s %s for %s: %s (%s)",
                    rec.data["anomalyId"],
                    rec.data["type"],
                    rec.data["accountId"],
                    rec.outcome.value,
                    rec.data["summary"],
                )
        return sent, len(windows), found_total

    def _save_run(
        self,
        name: str,
        now: datetime,
        duration: float,
        error: BaseException | None,
        *,
        anomalies: int = 0,
    ) -> None:
        values = {
            "last_run_at": now,
            "last_duration_s": duration,
            "last_outcome": "ok" if error is None else "failed",
            "last_error": None if error is None else f"{type(error).__name__}: {error}"[:500],
            "last_anomalies": anomalies,
        }
        try:
            with self._engine.begin() as conn:
                _upsert_run(conn, name, values)
        except Exception as exc:
            log.warning("could not record the run of %s: %s", name, exc)

    async def _hook_consumer(self) -> None:
        assert self._hook_queue is not None
        while True:
            batch = [await self._hook_queue.get()]
            while len(batch) < 500 and not self._hook_queue.empty():
                batch.append(self._hook_queue.get_nowait())
            await self._store_hook_events(batch)

    async def _drain_hooks(self) -> None:
        if self._hook_queue is None:
            return
        batch: list[OutboxEvent] = []
        while not self._hook_queue.empty():
            batch.append(self._hook_queue.get_nowait())
        if batch:
            await self._store_hook_events(batch)

    async def _store_hook_events(self, batch: Sequence[OutboxEvent]) -> None:
        for attempt in range(30):
            try:
                inserted = await asyncio.to_thread(self._insert, batch)
            except Exception as exc:  # the database may be away: wait and retry
                log.error("hook events not stored yet (attempt %d): %s", attempt + 1, exc)
                await asyncio.sleep(1)
                continue
            self.relay.send(inserted)
            return
        log.error("dropped %d hook events: the database stayed away", len(batch))
        self.metrics.hook_dropped.inc(len(batch))

    def _insert(self, batch: Sequence[OutboxEvent]) -> list[tuple[int, OutboxEvent]]:
        with self._engine.begin() as conn:
            return insert_new(conn, batch, datetime.now(UTC))

    async def _mark_done_loop(self) -> None:
        # Finished events are marked done as soon as they finish (batched only by what finishes
        # during the previous write): the shorter that gap, the less a kill -9 makes re-send.
        while True:
            await self.relay.has_done.wait()
            self.relay.has_done.clear()
            await self._flush()

    async def _flush(self) -> None:
        ids = self.relay.take_done()
        if not ids:
            return
        try:
            await asyncio.to_thread(self.relay.mark_done, ids)
        except Exception as exc:
            # Not marked: they are re-sent after a restart (at least once, never lost).
            log.error("could not mark %d events done: %s", len(ids), exc)
        self.relay.forget(ids)

    async def _resend(self) -> None:
        try:
            pending = await asyncio.to_thread(
                self.relay.load_pending, 1000, self.relay.in_flight_ids()
            )
        except Exception as exc:
            log.error("could not read pending events: %s", exc)
            return
        self.relay.send(pending)

    async def _housekeeping(self) -> None:
        retention = timedelta(days=self.settings.scheduler.outbox_retention_days)
        try:
            cutoff = datetime.now(UTC) - retention
            # After a long downtime the tail re-reads approvals from before the retention:
            # keep the keys it will need to recognise what it already sent.
            reread_from = await asyncio.to_thread(self.tail.reread_from)
            if reread_from is not None:
                cutoff = min(cutoff, reread_from - timedelta(minutes=1))
            purged = await asyncio.to_thread(self.relay.purge, cutoff)
        except Exception as exc:
            log.error("housekeeping failed: %s", exc)
            return
        if purged:
            log.info("housekeeping: forgot %d delivered events older than %s", purged, retention)

    async def _every(
        self, interval: Callable[[], float], work: Callable[[], Awaitable[None]]
    ) -> None:
        while True:
            await work()
            await asyncio.sleep(interval())

    def _observe(self, rec: DeliveryRecord) -> None:
        self.metrics.deliveries.labels(rec.event_type, rec.outcome.value).inc()
        self.metrics.delivery_seconds.observe(rec.duration_s)
        detail = f"HTTP {rec.status}" if rec.status is not None else (rec.error or "")
        log.log(
            logging.INFO if rec.ok else logging.WARNING,
            "delivery %s %s to endpoint %s (account %s): %s %s in %.0f ms",
            rec.delivery_id,
            rec.event_type,
            rec.endpoint_id,
            rec.account_id,
            "ok" if rec.ok else "failed",
            detail,
            rec.duration_s * 1000,
            extra={
                "delivery_id": rec.delivery_id,
                "event": rec.event_type,
                "endpoint_id": rec.endpoint_id,
                "account_id": rec.account_id,
                "ok": rec.ok,
                "status": rec.status,
                "at": format_time(rec.at),
            },
        )


def _save_window(conn: sa.Connection, name: str, window_end: datetime) -> None:
    _upsert_run(conn, name, {"last_window_end": window_end})


def _upsert_run(conn: sa.Connection, name: str, values: dict[str, Any]) -> None:
    updated = conn.execute(
        sa.update(detector_runs).where(detector_runs.c.detector == name).values(values)
    )
    if not updated.rowcount:
        conn.execute(sa.insert(detector_runs).values(detector=name, **values))


def _display_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
