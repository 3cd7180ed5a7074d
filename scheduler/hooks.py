"""The in-process hook a Python gateway calls at the moment of the verdict.

Every method only queues and returns at once; it never raises into the gateway, whatever is
wrong (a full queue, a stopped daemon, a bad argument). The events take the same path as the
tail's: into the outbox under the same keys, so a deny reported by both the hook and the tail
goes out once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from delivery import payloads

from .outbox import OutboxEvent

log = logging.getLogger(__name__)


class Hooks:
    """``call_blocked``, ``approval_created``, ``approval_resolved``: fire-and-forget.

    Safe to call from any thread. Create it through the daemon (``Daemon.hooks``).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[OutboxEvent],
        on_drop: Callable[[], None] = lambda: None,
    ) -> None:
        self._loop = loop
        self._queue = queue
        self._on_drop = on_drop

    def call_blocked(
        self,
        *,
        tool_call_id: int,
        account_id: str,
        server: str,
        tool: str,
        args_hash: str,
        reason: str | None = None,
        policy_id: str | None = None,
        rule_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """The gateway denied a tool call (its ``activity_log`` row has ``tool_call_id``)."""
        try:
            data = payloads.call_blocked(
                tool_call_id=tool_call_id,
                account_id=account_id,
                server=server,
                tool=tool,
                reason=reason,
                policy_id=policy_id,
                rule_id=rule_id,
                args_hash=args_hash,
                occurred_at=occurred_at or datetime.now(UTC),
            )
            self._offer(OutboxEvent.of(payloads.CALL_BLOCKED, tool_call_id, account_id, data))
        except Exception:  # a hook can never hurt its caller
            log.exception("hooks: call_blocked dropped")
            self._on_drop()

    def approval_created(
        self,
        *,
        approval_id: str,
        tool_call_id: int,
        account_id: str,
        server: str,
        tool: str,
        args_hash: str,
        expires_at: datetime,
        reason: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """A call now waits for a human's decision."""
        try:
            data = payloads.approval_created(
                approval_id=approval_id,
                tool_call_id=tool_call_id,
                account_id=account_id,
                server=server,
                tool=tool,
                args_hash=args_hash,
                reason=reason,
                expires_at=expires_at,
                occurred_at=occurred_at or datetime.now(UTC),
            )
            self._offer(OutboxEvent.of(payloads.APPROVAL_CREATED, approval_id, account_id, data))
        except Exception:
            log.exception("hooks: approval_created dropped")
            self._on_drop()

    def approval_resolved(
        self,
        *,
        approval_id: str,
        tool_call_id: int,
        account_id: str,
        server: str,
        tool: str,
        args_hash: str,
        decision: Literal["approved", "denied"],
        method: Literal["dashboard", "live_feed", "email", "api", "timeout"],
        resolved_by: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """A human approved or denied, or nobody answered in time (``denied``/``timeout``)."""
        try:
            data = payloads.approval_resolved(
                approval_id=approval_id,
                tool_call_id=tool_call_id,
                account_id=account_id,
                server=server,
                tool=tool,
                args_hash=args_hash,
                decision=decision,
                method=method,
                resolved_by=resolved_by,
                occurred_at=occurred_at or datetime.now(UTC),
            )
            self._offer(OutboxEvent.of(payloads.APPROVAL_RESOLVED, approval_id, account_id, data))
        except Exception:
            log.exception("hooks: approval_resolved dropped")
            self._on_drop()

    def _offer(self, event: OutboxEvent) -> None:
        if self._loop.is_closed():
            self._drop(event)
        elif in_loop(self._loop):
            self._put(event)
        else:
            self._loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: OutboxEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._drop(event)

    def _drop(self, event: OutboxEvent) -> None:
        log.warning(
            "hooks: queue full, dropped %s for account %s", event.event_type, event.account_id
        )
        self._on_drop()


def in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the caller runs on ``loop``'s thread, inside it."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
