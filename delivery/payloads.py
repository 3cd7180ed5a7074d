"""The ``data`` of each event, built from explicit fields (the contract's section 2).

Every builder takes keyword-only arguments and nothing else, so a tool call's raw arguments have
no way in: only ``args_hash`` does. Times are aware datetimes, rendered in the contract's form.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal

CALL_BLOCKED: Final = "call.blocked"
APPROVAL_CREATED: Final = "approval.created"
APPROVAL_RESOLVED: Final = "approval.resolved"
ANOMALY_DETECTED: Final = "anomaly.detected"
WEBHOOK_TEST: Final = "webhook.test"

#: The events an endpoint can subscribe to, in the contract's order.
EVENT_TYPES: Final[tuple[str, ...]] = (
    CALL_BLOCKED,
    APPROVAL_CREATED,
    APPROVAL_RESOLVED,
    ANOMALY_DETECTED,
)

Data = dict[str, Any]


def format_time(value: datetime) -> str:
    """The contract's time form, UTC with milliseconds: ``2026-06-19T12:00:00.000Z``."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass an aware time")
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def call_blocked(
    *,
    tool_call_id: int,
    account_id: str,
    server: str,
    tool: str,
    reason: str | None,
    policy_id: str | None,
    rule_id: str | None,
    args_hash: str,
    occurred_at: datetime,
) -> Data:
    """``call.blocked``: the gateway denied a tool call."""
    return {
        "toolCallId": tool_call_id,
        "accountId": account_id,
        "server": server,
        "tool": tool,
        "reason": reason,
        "policyId": policy_id,
        "ruleId": rule_id,
        "argsHash": args_hash,
        "occurredAt": format_time(occurred_at),
    }


def approval_created(
    *,
    approval_id: str,
    tool_call_id: int,
    account_id: str,
    server: str,
    tool: str,
    args_hash: str,
    reason: str | None,
    expires_at: datetime,
    occurred_at: datetime,
) -> Data:
    """``approval.created``: a call waits for a human's decision."""
    return {
        "approvalId": approval_id,
        "toolCallId": tool_call_id,
        "accountId": account_id,
        "server": server,
        "tool": tool,
        "argsHash": args_hash,
        "reason": reason,
        "expiresAt": format_time(expires_at),
        "occurredAt": format_time(occurred_at),
    }


def approval_resolved(
    *,
    approval_id: str,
    tool_call_id: int,
    account_id: str,
    server: str,
    tool: str,
    args_hash: str,
    decision: Literal["approved", "denied"],
    method: Literal["dashboard", "live_feed", "email", "api", "timeout"],
    resolved_by: str | None,
    occurred_at: datetime,
) -> Data:
    """``approval.resolved``: approved or denied; an approval that timed out is ``denied``
    with method ``timeout``."""
    return {
        "approvalId": approval_id,
        "toolCallId": tool_call_id,
        "accountId": account_id,
        "server": server,
        "tool": tool,
        "argsHash": args_hash,
        "decision": decision,
        "method": method,
        "resolvedBy": resolved_by,
        "occurredAt": format_time(occurred_at),
    }


def anomaly_detected(
    *,
    anomaly_id: str,
    account_id: str,
    type: Literal["call_spike", "block_rate_jump", "new_tool"],
    severity: Literal["low", "medium", "high"],
    window_start: datetime,
    window_end: datetime,
    observed: float,
    baseline: float,
    threshold: float,
    server: str | None,
    tool: str | None,
    summary: str,
    detected_at: datetime,
) -> Data:
    """``anomaly.detected``: a detector found unusual behaviour in a closed window."""
    return {
        "anomalyId": anomaly_id,
        "accountId": account_id,
        "type": type,
        "severity": severity,
        "windowStart": format_time(window_start),
        "windowEnd": format_time(window_end),
        "observed": observed,
        "baseline": baseline,
        "threshold": threshold,
        "server": server,
        "tool": tool,
        "summary": summary,
        "detectedAt": format_time(detected_at),
    }


def webhook_test(*, endpoint_id: str, account_id: str, message: str) -> Data:
    """``webhook.test``: sent by "send test" to one endpoint, whatever it subscribes to."""
    return {"endpointId": endpoint_id, "accountId": account_id, "message": message}
