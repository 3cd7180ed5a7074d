"""The tail on SQLite and PostgreSQL: exactly once, late commits, restarts, malformed rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from scheduler.outbox import OutboxEvent, insert_new
from scheduler.schema import activity_log
from scheduler.state import outbox
from scheduler.tail import Tail
from tests.gateway import activity_row, create_approval, log_calls, resolve_approval

T0 = datetime(2026, 6, 19, 12, 0, tzinfo=UTC)


def _keys(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [event.key for _, event in result.events]


def test_first_start_begins_at_now_without_history(engine: Engine) -> None:
    log_calls(engine, [activity_row("acc_a", decision="deny", at=T0) for _ in range(3)])
    tail = Tail(engine)
    assert tail.poll(T0).events == []
    assert tail.poll(T0 + timedelta(seconds=1)).events == []


def test_start_from_the_beginning_reads_history(engine: Engine) -> None:
    ids = log_calls(engine, [activity_row("acc_a", decision="deny", at=T0)])
    tail = Tail(engine, start="beginning")
    tail.poll(T0)
    assert _keys(tail.poll(T0)) == [f"call.blocked:{ids[0]}"]


def test_new_deny_rows_become_call_blocked_with_the_contract_fields(engine: Engine) -> None:
    tail = Tail(engine)
    tail.poll(T0)
    ids = log_calls(
        engine,
        [
            activity_row("acc_a", decision="allow", at=T0),
            activity_row("acc_a", decision="deny", at=T0, tool="delete_repo"),
            activity_row("acc_b", decision="require_approval", at=T0),
        ],
    )
    result = tail.poll(T0 + timedelta(seconds=1))
    assert _keys(result) == [f"call.blocked:{ids[1]}"]
    event = result.events[0][1]
    assert event.account_id == "acc_a"
    assert set(event.data) == {
        "toolCallId",
        "accountId",
        "server",
        "tool",
        "reason",
        "policyId",
        "ruleId",
        "argsHash",
        "occurredAt",
    }
    assert event.data["toolCallId"] == ids[1]
    assert event.data["tool"] == "delete_repo"
    assert event.data["occurredAt"] == "2026-06-19T12:00:00.000Z"
    assert len(event.data["argsHash"]) == 64


def test_a_row_that_commits_late_below_the_position_is_still_sent_once(engine: Engine) -> None:
    log_calls(engine, [activity_row("acc_a", row_id=100, at=T0)])
    tail = Tail(engine)
    tail.poll(T0)
    # Ids 101 and 103 commit; 102's writer is still in its transaction.
    log_calls(engine, [activity_row("acc_a", decision="deny", row_id=101, at=T0)])
    log_calls(engine, [activity_row("acc_a", decision="deny", row_id=103, at=T0)])
    first = tail.poll(T0 + timedelta(seconds=1))
    assert _keys(first) == ["call.blocked:101", "call.blocked:103"]
    assert first.gaps_open == 1
    log_calls(engine, [activity_row("acc_a", decision="deny", row_id=102, at=T0)])
    second = tail.poll(T0 + timedelta(seconds=2))
    assert _keys(second) == ["call.blocked:102"]
    assert second.gaps_open == 0
    assert tail.poll(T0 + timedelta(seconds=3)).events == []


def test_a_restart_resumes_where_the_last_poll_stopped(engine: Engine) -> None:
    Tail(engine).poll(T0)
    ids = log_calls(engine, [activity_row("acc_a", decision="deny", at=T0) for _ in range(2)])
    assert len(Tail(engine).poll(T0 + timedelta(seconds=1)).events) == 2
    ids += log_calls(engine, [activity_row("acc_a", decision="deny", at=T0)])
    after_restart = Tail(engine).poll(T0 + timedelta(seconds=2))
    assert _keys(after_restart) == [f"call.blocked:{ids[2]}"]


def test_a_gap_that_never_fills_is_given_up_after_the_timeout(engine: Engine) -> None:
    log_calls(engine, [activity_row("acc_a", row_id=49, at=T0)])
    tail = Tail(engine, gap_timeout=timedelta(seconds=60))
    tail.poll(T0)
    log_calls(
        engine, [activity_row("acc_a", row_id=50, at=T0), activity_row("acc_a", row_id=52, at=T0)]
    )
    assert tail.poll(T0 + timedelta(seconds=1)).gaps_open == 1
    assert tail.poll(T0 + timedelta(seconds=30)).gaps_open == 1
    late = tail.poll(T0 + timedelta(seconds=62))
    assert (late.gaps_expired, late.gaps_open) == (1, 0)


def test_malformed_rows_are_counted_and_skipped(engine: Engine) -> None:
    tail = Tail(engine)
    tail.poll(T0)
    ids = log_calls(
        engine,
        [
            activity_row("acc_a", decision="DENIED", at=T0),
            activity_row("acc_a", decision="deny", at=T0),
        ],
    )
    result = tail.poll(T0 + timedelta(seconds=1))
    assert result.malformed == 1
    assert _keys(result) == [f"call.blocked:{ids[1]}"]


def test_a_garbage_timestamp_skips_one_row_not_the_poll(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL's timestamptz column cannot hold garbage
    tail = Tail(engine)
    tail.poll(T0)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO activity_log (account_id, created_at, server, tool, decision, args_hash)"
            " VALUES ('acc_a', 'yesterday-ish', 'github', 'x', 'deny', 'ff')"
        )
    ids = log_calls(engine, [activity_row("acc_a", decision="deny", at=T0)])
    result = tail.poll(T0 + timedelta(seconds=1))
    assert result.malformed == 1
    assert _keys(result) == [f"call.blocked:{ids[0]}"]


def test_an_approval_created_and_resolved_between_polls_sends_both_created_first(
    engine: Engine,
) -> None:
    tail = Tail(engine)
    tail.poll(T0)
    create_approval(engine, "apr_1", "acc_a", 7, at=T0 + timedelta(seconds=1))
    resolve_approval(engine, "apr_1", "approved", "email", at=T0 + timedelta(seconds=2))
    result = tail.poll(T0 + timedelta(seconds=3))
    assert _keys(result) == ["approval.created:apr_1", "approval.resolved:apr_1"]
    resolved = result.events[1][1].data
    assert resolved["decision"] == "approved"
    assert resolved["method"] == "email"
    assert resolved["resolvedBy"] == "alice@example.com"
    assert tail.poll(T0 + timedelta(seconds=4)).events == []


def test_an_expired_approval_is_resolved_as_denied_by_timeout(engine: Engine) -> None:
    tail = Tail(engine)
    tail.poll(T0)
    create_approval(engine, "apr_2", "acc_a", 8, at=T0 + timedelta(seconds=1))
    assert _keys(tail.poll(T0 + timedelta(seconds=2))) == ["approval.created:apr_2"]
    resolve_approval(engine, "apr_2", "expired", None, at=T0 + timedelta(minutes=15), by=None)
    result = tail.poll(T0 + timedelta(minutes=15, seconds=1))
    data = result.events[0][1].data
    assert (data["decision"], data["method"], data["resolvedBy"]) == ("denied", "timeout", None)


def test_an_approval_that_commits_late_within_the_lookback_is_sent(engine: Engine) -> None:
    tail = Tail(engine, lookback=timedelta(minutes=5))
    tail.poll(T0)
    tail.poll(T0 + timedelta(seconds=10))
    # Created at T0+5s but only visible now, after the poll at T0+10s.
    create_approval(engine, "apr_late", "acc_a", 9, at=T0 + timedelta(seconds=5))
    assert _keys(tail.poll(T0 + timedelta(seconds=11))) == ["approval.created:apr_late"]


def test_the_hook_and_the_tail_send_the_same_deny_once(engine: Engine) -> None:
    tail = Tail(engine)
    tail.poll(T0)
    ids = log_calls(engine, [activity_row("acc_a", decision="deny", at=T0)])
    hook_event = OutboxEvent(f"call.blocked:{ids[0]}", "acc_a", "call.blocked", {"x": 1})
    with engine.begin() as conn:
        assert len(insert_new(conn, [hook_event], T0)) == 1
    assert tail.poll(T0 + timedelta(seconds=1)).events == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar() == 1


def test_a_large_backlog_is_read_in_batches(engine: Engine) -> None:
    tail = Tail(engine, batch=100)
    tail.poll(T0)
    log_calls(engine, [activity_row("acc_a", decision="deny", at=T0) for _ in range(250)])
    sizes = [len(tail.poll(T0 + timedelta(seconds=i)).events) for i in range(1, 5)]
    assert sizes == [100, 100, 50, 0]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(activity_log)).scalar() == 250
