"""The dispatcher: queues events, signs and sends them to each subscribed endpoint, records how
each attempt went.

Flow: ``publish()`` appends to a bounded queue and returns. One loop task takes events off the
queue, builds each body once, and appends one delivery per subscribed endpoint to that
endpoint's own bounded backlog. Each endpoint has up to ``per_endpoint_concurrency`` worker tasks
draining its backlog, and all of them share ``max_concurrency`` request slots and one
``httpx.AsyncClient``. The loop never waits for an endpoint: a delivery that does not fit in its
endpoint's backlog is recorded as dropped, so a hanging receiver delays nobody else.
Outcomes are buffered and written in batches by a flusher task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
from sqlalchemy import Engine

from .config import DeliveryConfig
from .endpoints import EndpointStore, Target
from .exceptions import DeliveryError
from .payloads import EVENT_TYPES, WEBHOOK_TEST, format_time, webhook_test
from .records import DeliveryOutcome, DeliveryRecord
from .secret_box import SecretCipher, load_cipher
from .signing import HEADER_DELIVERY, HEADER_EVENT, HEADER_SIGNATURE, HEADER_TIMESTAMP, sign
from .transport import USER_AGENT, make_client, post

logger = logging.getLogger(__name__)

TEST_MESSAGE: Final = "This is a test delivery from enforgate-webhooks."
# Outcomes kept in memory while the database is unreachable; older ones are dropped past this.
_MAX_BUFFERED_RECORDS: Final = 50_000
# The delivery log is pruned this often.
_PRUNE_EVERY_S: Final = 3600.0
# drain() checks for idleness this often; it is for tests and `run --once`, not a hot path.
_DRAIN_POLL_S: Final = 0.005
# A full queue is logged at most this often, with the count since the last line.
_DROP_LOG_EVERY_S: Final = 10.0

Observer = Callable[[DeliveryRecord], None]


@dataclass(slots=True)
class _Event:
    account_id: str
    event_type: str
    data: dict[str, Any]
    sent_at: datetime
    on_done: Callable[[], None] | None = None
    body: bytes = b""  # built once, when the event is fanned out
    remaining: int = 0  # attempts not finished yet


@dataclass(slots=True)
class _Slot:
    """One endpoint's backlog and workers."""

    backlog: deque[tuple[_Event, Target]] = field(default_factory=deque)
    workers: int = 0
    congested: bool = False  # dropping new deliveries; logged once per episode


class Dispatcher:
    """Delivers events to the endpoints that subscribe to them.

    Args:
        engine: the database with the endpoints; owned by the caller.
        config: the ``[delivery]`` settings.
        client: the shared HTTP client; if None the dispatcher creates one and closes it in
            :meth:`aclose`. An injected client is the caller's to close.
        observer: called once per attempt with its record (metrics, logs). Exceptions from it
            are logged and swallowed.
        cipher: decrypts endpoint secrets; default: the key from ``ENFORGATE_SECRET_KEY`` or
            ``config.secret_key_file``.

    Thread safety: :meth:`publish` may be called from any thread. It appends to a deque under a
    ``threading.Lock`` and, from a foreign thread, wakes the loop with
    ``loop.call_soon_threadsafe``; everything else runs on the loop that called :meth:`start`.
    """

    def __init__(
        self,
        engine: Engine,
        config: DeliveryConfig,
        *,
        client: httpx.AsyncClient | None = None,
        observer: Observer | None = None,
        cipher: SecretCipher | None = None,
    ) -> None:
        self._config = config
        self._store = EndpointStore(
            engine,
            cipher if cipher is not None else load_cipher(config.secret_key_file),
            allow_insecure_localhost=config.allow_insecure_localhost,
        )
        self._client = client
        self._owns_client = client is None
        self._observer = observer
        self._lock = threading.Lock()
        self._queue: deque[_Event] = deque()
        self._closed = False
        self._dropped = 0
        self._dropped_since_log = 0
        self._last_drop_log = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wakeup: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots: dict[str, _Slot] = {}
        self._targets: dict[str, list[Target]] = {}
        self._targets_at = -float("inf")
        self._targets_loaded: asyncio.Event | None = None
        self._busy = False  # the loop holds an event it has not finished fanning out
        self._in_flight = 0
        self._pending = 0  # deliveries waiting in endpoint backlogs
        self._requests: asyncio.Semaphore | None = None
        self._records: list[DeliveryRecord] = []
        self._flush_lock: asyncio.Lock | None = None
        self._last_prune = -float("inf")

    # -- read-only stats -------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Events published and not yet fanned out to their endpoints."""
        return len(self._queue)

    @property
    def dropped(self) -> int:
        """Events dropped by :meth:`publish` (queue full, closed, or unusable)."""
        return self._dropped

    @property
    def pending(self) -> int:
        """Deliveries fanned out to endpoint backlogs and not yet started."""
        return self._pending

    @property
    def in_flight(self) -> int:
        """HTTP requests under way right now."""
        return self._in_flight

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the loop and the flusher on the running event loop."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wakeup = asyncio.Event()
        self._targets_loaded = asyncio.Event()
        self._requests = asyncio.Semaphore(self._config.max_concurrency)
        self._flush_lock = asyncio.Lock()
        if self._client is None:
            self._client = make_client(self._config)
        self._spawn(self._run())
        self._spawn(self._flusher())
        self._spawn(self._refresher())
        if self._queue:
            self._wakeup.set()

    # `timeout` is the interface the daemon and tests were promised (ASYNC109 prefers a scope).
    async def drain(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until every queued event is delivered and every outcome is written.

        Returns False if that did not happen within ``timeout`` seconds.
        """
        if self._loop is None:  # not started: nothing can be delivered or written
            return self._idle()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._idle():
            if self._closed and not self._tasks:
                return False  # closed with work left over: nothing will finish it now
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_DRAIN_POLL_S)
        await self._flush()
        return True

    async def aclose(self, deadline_s: float) -> None:
        """Stop taking events, let queued and in-flight deliveries finish for up to
        ``deadline_s`` seconds, cancel what is left, write the outcomes, close an owned client."""
        with self._lock:
            self._closed = True
        if self._loop is None:
            return
        await self.drain(deadline_s)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._flush()
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    def reconfigure(self, config: DeliveryConfig) -> None:
        """Apply reloaded settings (SIGHUP). Timeouts, limits and refresh take effect for the
        next attempts; ``secret_key_file`` only on restart. Requests already holding a slot
        keep it, so for a moment the old and new concurrency caps overlap."""
        old, self._config = self._config, config
        self._store.allow_insecure_localhost = config.allow_insecure_localhost
        if self._requests is not None and config.max_concurrency != old.max_concurrency:
            self._requests = asyncio.Semaphore(config.max_concurrency)
        self._targets_at = -float("inf")  # re-read the endpoints with the next event

    # -- publishing ----------------------------------------------------------------------------

    def publish(
        self,
        account_id: str,
        event_type: str,
        data: Mapping[str, Any],
        *,
        on_done: Callable[[], None] | None = None,
    ) -> bool:
        """Queue an event for ``account_id``'s endpoints that subscribe to ``event_type``.

        Returns at once and never raises. Returns False if the event was dropped: the queue is
        full, the dispatcher is closed, or the event type is unknown.

        Args:
            on_done: called on the loop once every attempt for this event is over, whatever
                its outcome (at once if no endpoint subscribes). Not called for a dropped event,
                nor for attempts cut short by :meth:`aclose`. Its exceptions are logged.
        """
        try:
            if event_type not in EVENT_TYPES:
                return self._drop(f"unknown event type {event_type!r}")
            event = _Event(account_id, event_type, dict(data), datetime.now(UTC), on_done)
            with self._lock:
                accepted = not self._closed and len(self._queue) < self._config.queue_size
                if accepted:
                    self._queue.append(event)
            if not accepted:
                return self._drop("dispatcher closed" if self._closed else "queue full")
            wakeup = self._wakeup
            # A set event means the loop has yet to look at the queue: it will see this one too.
            if wakeup is not None and not wakeup.is_set():
                if threading.get_ident() == self._loop_thread:
                    wakeup.set()
                elif self._loop is not None:
                    self._loop.call_soon_threadsafe(wakeup.set)
            return True
        except Exception:
            logger.exception("publish failed; event dropped")
            with contextlib.suppress(Exception):
                self._dropped += 1
            return False

    def _drop(self, why: str) -> bool:
        with self._lock:
            self._dropped += 1
            self._dropped_since_log += 1
            now = time.monotonic()
            if now - self._last_drop_log < _DROP_LOG_EVERY_S:
                return False
            count, self._dropped_since_log, self._last_drop_log = self._dropped_since_log, 0, now
        logger.warning(
            "webhook event dropped (%s): %d since the last warning, %d in all",
            why,
            count,
            self._dropped,
        )
        return False

    # -- the loop ------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _idle(self) -> bool:
        return (
            not self._queue
            and not self._busy
            and self._in_flight == 0
            and all(not s.backlog and s.workers == 0 for s in self._slots.values())
        )

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while True:
                with self._lock:
                    if not self._queue:
                        break
                    event = self._queue.popleft()
                    self._busy = True
                try:
                    await self._fan_out(event)
                except Exception:
                    # E.g. data that is not JSON: retrying would fail the same way.
                    logger.exception("event %s for %s dropped", event.event_type, event.account_id)
                    _call_done(event)
                finally:
                    self._busy = False

    async def _fan_out(self, event: _Event) -> None:
        targets = [
            t for t in (await self._targets_of(event.account_id)) if event.event_type in t.events
        ]
        if targets:
            event.body = _body(event.event_type, event.data, event.sent_at)  # once for all
            event.remaining = len(targets)
            for target in targets:
                self._enqueue(event, target)
        else:
            _call_done(event)

    async def _targets_of(self, account_id: str) -> list[Target]:
        # The refresher keeps the list at most `endpoints_refresh_s` old, off the delivery path
        # (a re-read on the path added a database read and decryptions to one event's latency
        # every few seconds). Only a list never read, or invalidated by a reload, is read here.
        if self._targets_at == -float("inf"):
            await self.refresh_endpoints()
        elif self._targets_loaded is not None and not self._targets_loaded.is_set():
            await self._targets_loaded.wait()  # the refresher's first read is under way
        return self._targets.get(account_id, [])

    async def _refresher(self) -> None:
        while not self._closed:
            if time.monotonic() - self._targets_at >= self._config.endpoints_refresh_s:
                await self.refresh_endpoints()
            await asyncio.sleep(min(1.0, self._config.endpoints_refresh_s))

    async def refresh_endpoints(self) -> None:
        """Re-read the endpoints now (otherwise every ``endpoints_refresh_s`` seconds)."""
        self._targets_at = time.monotonic()
        try:
            targets = await asyncio.to_thread(self._store.targets)
        except DeliveryError as exc:
            logger.error("cannot read webhook endpoints, keeping the last list: %s", exc)
            return
        finally:
            if self._targets_loaded is not None:
                self._targets_loaded.set()
        by_account: dict[str, list[Target]] = {}
        for target in targets:
            by_account.setdefault(target.account_id, []).append(target)
        self._targets = by_account

    def _enqueue(self, event: _Event, target: Target) -> None:
        # Never waits: a receiver that does not keep up fills its own backlog only, and what
        # does not fit there is recorded as dropped for that endpoint alone.
        slot = self._slots.get(target.endpoint_id)
        if slot is None:
            slot = self._slots[target.endpoint_id] = _Slot()
        if len(slot.backlog) >= self._config.per_endpoint_backlog:
            if not slot.congested:
                slot.congested = True
                logger.warning(
                    "endpoint %s is not keeping up (%d deliveries waiting): dropping its new "
                    "deliveries until it catches up",
                    target.endpoint_id,
                    len(slot.backlog),
                )
            self._record(
                DeliveryRecord(
                    delivery_id=_delivery_id(),
                    endpoint_id=target.endpoint_id,
                    account_id=target.account_id,
                    event_type=event.event_type,
                    at=datetime.now(UTC),
                    duration_s=0.0,
                    outcome=DeliveryOutcome.DROPPED,
                    ok=False,
                    status=None,
                    error=f"BacklogFull: {len(slot.backlog)} deliveries already waiting",
                )
            )
            _attempt_over(event)
            return
        slot.backlog.append((event, target))
        self._pending += 1
        if slot.workers < self._config.per_endpoint_concurrency:
            slot.workers += 1
            self._spawn(self._work(slot))

    async def _work(self, slot: _Slot) -> None:
        try:
            while slot.backlog:
                event, target = slot.backlog.popleft()
                self._pending -= 1
                if slot.congested and len(slot.backlog) <= self._config.per_endpoint_backlog // 2:
                    slot.congested = False
                try:
                    await self._attempt(event.body, event.event_type, target)
                except Exception:
                    # A bug here must not stop this endpoint's other deliveries.
                    logger.exception("delivery to %s failed unexpectedly", target.endpoint_id)
                _attempt_over(event)
        finally:
            slot.workers -= 1

    async def _attempt(self, body: bytes, event_type: str, target: Target) -> DeliveryRecord:
        assert self._requests is not None
        assert self._client is not None
        async with self._requests:
            self._in_flight += 1
            try:
                delivery_id = _delivery_id()
                timestamp = time.time_ns() // 1_000_000
                headers = {
                    "content-type": "application/json",
                    "user-agent": USER_AGENT,
                    HEADER_EVENT: event_type,
                    HEADER_TIMESTAMP: str(timestamp),
                    HEADER_SIGNATURE: sign(target.secret, timestamp, body),
                    HEADER_DELIVERY: delivery_id,
                }
                at = datetime.now(UTC)
                started = time.perf_counter()
                outcome, status, error = await post(
                    self._client, target.url, body, headers, self._config
                )
                duration = time.perf_counter() - started
            finally:
                self._in_flight -= 1
        record = DeliveryRecord(
            delivery_id=delivery_id,
            endpoint_id=target.endpoint_id,
            account_id=target.account_id,
            event_type=event_type,
            at=at,
            duration_s=duration,
            outcome=outcome,
            ok=outcome is DeliveryOutcome.OK,
            status=status,
            error=error if error is not None else _status_error(status, outcome),
        )
        self._record(record)
        return record

    # -- send test -----------------------------------------------------------------------------

    async def send_test(self, endpoint_id: str) -> DeliveryRecord:
        """Send ``webhook.test`` to one endpoint, whatever it subscribes to, record the outcome
        (written before this returns) and return it.

        Raises:
            UnknownEndpoint: no such endpoint.
            PlanNotAllowed: its account's plan has no webhooks.
        """
        await self.start()
        target = await asyncio.to_thread(self._store.target, endpoint_id)
        data = webhook_test(
            endpoint_id=target.endpoint_id, account_id=target.account_id, message=TEST_MESSAGE
        )
        record = await self._attempt(
            _body(WEBHOOK_TEST, data, datetime.now(UTC)), WEBHOOK_TEST, target
        )
        await self._flush()
        return record

    # -- health records ------------------------------------------------------------------------

    def _record(self, record: DeliveryRecord) -> None:
        self._records.append(record)
        if len(self._records) > _MAX_BUFFERED_RECORDS:
            del self._records[: len(self._records) - _MAX_BUFFERED_RECORDS]
            logger.warning("delivery outcomes are not being written; dropping the oldest")
        if self._observer is not None:
            try:
                self._observer(record)
            except Exception:
                logger.exception("delivery observer failed (ignored)")

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self._config.health_flush_interval_s)
            try:
                await self._flush()
            except Exception:
                # A bug in one batch must not stop recording for the life of the daemon.
                logger.exception("writing delivery outcomes failed")

    async def _flush(self) -> None:
        assert self._flush_lock is not None
        async with self._flush_lock:
            batch, self._records = self._records, []
            if batch:
                try:
                    await asyncio.to_thread(self._store.record, batch)
                except DeliveryError as exc:
                    # Put them back to retry with the next batch; the cap bounds the memory.
                    self._records[:0] = batch
                    logger.error("cannot write %d delivery outcomes: %s", len(batch), exc)
                    return
            if time.monotonic() - self._last_prune >= _PRUNE_EVERY_S:
                self._last_prune = time.monotonic()
                before = datetime.now(UTC) - timedelta(days=self._config.log_retention_days)
                try:
                    await asyncio.to_thread(self._store.prune_log, before)
                except DeliveryError as exc:
                    logger.error("cannot prune the delivery log: %s", exc)


def _attempt_over(event: _Event) -> None:
    event.remaining -= 1
    if event.remaining == 0:
        _call_done(event)


def _call_done(event: _Event) -> None:
    if event.on_done is None:
        return
    try:
        event.on_done()
    except Exception:
        logger.exception("on_done callback failed (ignored)")


def _body(event_type: str, data: Mapping[str, Any], sent_at: datetime) -> bytes:
    document = {"event": event_type, "sentAt": format_time(sent_at), "data": data}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _delivery_id() -> str:
    return "dlv_" + uuid.uuid4().hex


def _status_error(status: int | None, outcome: DeliveryOutcome) -> str | None:
    if status is None or outcome is DeliveryOutcome.OK:
        return None
    if outcome is DeliveryOutcome.REDIRECT:
        return f"Redirect: HTTP {status} (redirects are not followed)"
    return f"HTTPStatus: HTTP {status}"
