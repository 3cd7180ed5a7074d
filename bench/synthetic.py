"""Seeded, realistic synthetic gateway activity with labelled incidents.

``generate(engine, start, days, seed=...)`` bulk-inserts ``accounts`` and ``activity_log`` rows:
accounts of very different sizes (a few to ten thousand calls an hour), a working-day rhythm
(quiet nights, a morning ramp, quiet weekends) or a 24/7 one, day-to-day noise and Poisson
counts; and, from ``default_incidents``, injected volume spikes, block-rate jumps and new tools,
plus decoys that must not fire. It returns the incidents, so a benchmark can score ``detect``.

The lead reuses it for the ``make run`` demo; it only needs an Engine with the schema migrated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import numpy as np
from sqlalchemy import Engine

from scheduler.schema import accounts as accounts_table

HOUR: Final = 3600
DAY: Final = 86_400
_REQUIRE_APPROVAL_SHARE: Final = 0.01

Rhythm = Literal["office", "always"]
IncidentKind = Literal["call_spike", "block_rate_jump", "new_tool", "decoy"]


@dataclass(frozen=True)
class Profile:
    """One synthetic account: its size, rhythm, usual denied share and tools."""

    id: str
    peak_per_hour: float
    rhythm: Rhythm = "office"
    deny_rate: float = 0.03
    plan: str = "pro"
    tools: tuple[tuple[str, str], ...] = (
        ("github", "list_issues"),
        ("github", "create_pr"),
        ("slack", "post_message"),
        ("postgres", "query"),
    )
    first_day: int = 0  # days after the start when the account begins calling


@dataclass(frozen=True)
class Incident:
    """A labelled change injected into one account; ``kind == "decoy"`` must not fire."""

    kind: IncidentKind
    account_id: str
    start: datetime
    end: datetime
    factor: float = 1.0  # volume multiplier (spikes, decoy peaks)
    deny_rate: float | None = None  # denied share during the incident (block-rate jumps)
    tool: tuple[str, str] | None = None  # the pair used (new tools, a reappearing tool)
    calls: int = 0  # extra calls of ``tool``
    note: str = ""


@dataclass
class Generated:
    """What ``generate`` wrote."""

    profiles: list[Profile]
    incidents: list[Incident]
    rows: int = 0
    per_account: dict[str, int] = field(default_factory=dict)


def default_profiles() -> list[Profile]:
    """Nine accounts from ten thousand calls an hour to a couple."""
    return [
        Profile("acct_huge", 10_000, deny_rate=0.02, plan="scale"),
        Profile("acct_big", 3_000),
        Profile("acct_mid", 600, deny_rate=0.05),
        Profile("acct_service", 300, rhythm="always", deny_rate=0.01),
        Profile("acct_small", 80),
        Profile("acct_tiny", 8, plan="free"),
        Profile("acct_quiet", 2, rhythm="always", plan="free"),
        Profile("acct_batch", 150, rhythm="always", deny_rate=0.04),
        Profile("acct_new", 400, first_day=20, tools=(("github", "x"), ("jira", "y"), ("s3", "z"))),
    ]


def default_incidents(start: datetime) -> list[Incident]:
    """Labelled incidents and decoys for a history starting at ``start`` (30+ days).

    The first 7 days are history only (the detectors' look-back); incidents start after them.
    """

    def at(day: int, hour: int, hours: int = 1) -> tuple[datetime, datetime]:
        t = start + timedelta(days=day, hours=hour)
        return t, t + timedelta(hours=hours)

    spike: IncidentKind = "call_spike"
    block: IncidentKind = "block_rate_jump"
    new: IncidentKind = "new_tool"
    decoy: IncidentKind = "decoy"
    return [
        # Volume spikes of several sizes, on accounts of every size, day and night.
        Incident(spike, "acct_huge", *at(9, 14), factor=4, note="4x at the peak"),
        Incident(spike, "acct_big", *at(12, 3, 2), factor=8, note="8x at night, 2 hours"),
        Incident(spike, "acct_mid", *at(15, 10), factor=5, note="5x mid-morning"),
        Incident(spike, "acct_service", *at(18, 20), factor=12, note="12x evening"),
        Incident(spike, "acct_small", *at(21, 11), factor=6, note="6x on a small account"),
        Incident(spike, "acct_batch", *at(24, 5, 3), factor=5, note="5x for 3 hours"),
        Incident(spike, "acct_big", *at(27, 9), factor=3.5, note="3.5x during the ramp"),
        Incident(spike, "acct_mid", *at(33, 13), factor=10, note="10x"),
        # Block-rate jumps.
        Incident(block, "acct_big", *at(10, 11, 2), deny_rate=0.40, note="3% -> 40%"),
        Incident(block, "acct_mid", *at(16, 15), deny_rate=0.30, note="5% -> 30%"),
        Incident(block, "acct_huge", *at(22, 10), deny_rate=0.15, note="2% -> 15%"),
        Incident(block, "acct_service", *at(26, 2, 2), deny_rate=0.45, note="1% -> 45% at night"),
        Incident(block, "acct_batch", *at(30, 12), deny_rate=0.6, note="4% -> 60%"),
        # New tools on established accounts.
        Incident(new, "acct_mid", *at(11, 9), tool=("github", "delete_repo"), calls=3),
        Incident(new, "acct_huge", *at(14, 16), tool=("aws", "iam_create_user"), calls=1),
        Incident(new, "acct_small", *at(19, 2), tool=("shell", "exec"), calls=12),
        Incident(new, "acct_service", *at(25, 8), tool=("stripe", "refund"), calls=2),
        Incident(new, "acct_big", *at(31, 17), tool=("gdrive", "share_public"), calls=5),
        # Decoys: none of these may fire.
        Incident(decoy, "acct_mid", *at(13, 8, 10), factor=1.6, note="a busy day: smooth 1.6x"),
        Incident(decoy, "acct_tiny", *at(17, 10), factor=4, deny_rate=0.5, note="tiny account"),
        Incident(
            decoy,
            "acct_big",
            *at(2, 10),
            tool=("notion", "search"),
            calls=4,
            note="a tool used in the history...",
        ),
        Incident(
            decoy,
            "acct_big",
            *at(23, 10),
            tool=("notion", "search"),
            calls=4,
            note="...and again after three weeks",
        ),
        Incident(decoy, "acct_quiet", *at(20, 3), factor=5, note="a quiet account's 5x"),
    ]


def _shape(rhythm: Rhythm, hours: np.ndarray, weekdays: np.ndarray) -> np.ndarray:
    """The share of the peak at each hour: a working-day curve or a flat 24/7 one."""
    if rhythm == "always":
        return 0.8 + 0.2 * np.sin((hours - 6) / 24 * 2 * np.pi)
    day = np.select(
        [hours < 6, hours < 7, hours < 8, hours < 9, hours < 17, hours < 19, hours < 22],
        [0.04, 0.1, 0.3, 0.7, 1.0, 0.5, 0.15],
        0.06,
    )
    weekend = weekdays >= 5
    return np.where(weekend, day * 0.25, day)


def generate(
    engine: Engine,
    start: datetime,
    days: int,
    *,
    seed: int = 7,
    profiles: Sequence[Profile] | None = None,
    incidents: Sequence[Incident] | None = None,
    scale: float = 1.0,
    batch_days: int = 1,
) -> Generated:
    """Write ``days`` days of activity from ``start`` (aligned to the hour); return the labels.

    Args:
        engine: a migrated database; rows are appended.
        start: the first hour (UTC).
        days: how many days to write.
        seed: the random seed; the same seed writes the same rows.
        profiles: the accounts (default: ``default_profiles()``).
        incidents: what to inject (default: ``default_incidents(start)``).
        scale: multiplies every account's volume (e.g. 0.1 for a quick test).
        batch_days: days per insert transaction.
    """
    start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    profiles = list(default_profiles() if profiles is None else profiles)
    incidents = list(default_incidents(start) if incidents is None else incidents)
    rng = np.random.default_rng(seed)
    out = Generated(profiles, incidents)
    # A pool of argument digests: the content of args_hash does not matter to the detectors.
    hashes = np.array([hashlib.sha256(str(i).encode()).hexdigest() for i in range(4096)])
    with engine.begin() as conn:
        existing = {
            r[0]
            for r in conn.execute(accounts_table.select().with_only_columns(accounts_table.c.id))
        }
        new = [
            {
                "id": p.id,
                "name": p.id.removeprefix("acct_").title(),
                "plan": p.plan,
                "created_at": start + timedelta(days=p.first_day),
            }
            for p in profiles
            if p.id not in existing
        ]
        if new:
            conn.execute(accounts_table.insert(), new)
    start_s = int(start.timestamp())
    for day0 in range(0, days, batch_days):
        chunk = []
        for profile in profiles:
            part = _account_rows(
                profile,
                incidents,
                start_s,
                day0,
                min(batch_days, days - day0),
                scale,
                rng,
                start_s + profile.first_day * DAY,
            )
            if part is not None:
                chunk.append(part)
                out.per_account[profile.id] = out.per_account.get(profile.id, 0) + len(part[0])
        if not chunk:
            continue
        times = np.concatenate([c[0] for c in chunk])
        order = np.argsort(times, kind="stable")
        times = times[order]
        account = np.concatenate([c[1] for c in chunk])[order]
        server = np.concatenate([c[2] for c in chunk])[order]
        tool = np.concatenate([c[3] for c in chunk])[order]
        decision = np.concatenate([c[4] for c in chunk])[order]
        digest = hashes[rng.integers(0, len(hashes), len(times))]
        out.rows += _insert(engine, times, account, server, tool, decision, digest)
    return out


def _account_rows(
    profile: Profile,
    incidents: list[Incident],
    start_s: int,
    day0: int,
    days: int,
    scale: float,
    rng: np.random.Generator,
    first_s: int,
) -> tuple[np.ndarray, ...] | None:
    hour_starts = start_s + (day0 * 24 + np.arange(days * 24)) * HOUR
    stamps = hour_starts.astype("datetime64[s]")
    hours = (hour_starts % DAY) // HOUR
    weekdays = (stamps.astype("datetime64[D]").view("int64") - 4) % 7  # 1970-01-01 was a Thursday
    # Day-to-day noise: some days are a little busier than others (about +-10%).
    day_noise = rng.lognormal(0.0, 0.1, days).repeat(24)
    lam = profile.peak_per_hour * scale * _shape(profile.rhythm, hours, weekdays) * day_noise
    deny = np.full(len(hour_starts), profile.deny_rate)
    extra: list[tuple[int, str, str, int]] = []  # (time, server, tool, calls)
    for inc in incidents:
        if inc.account_id != profile.id:
            continue
        a, b = int(inc.start.timestamp()), int(inc.end.timestamp())
        inside = (hour_starts >= a) & (hour_starts < b)
        lam = np.where(inside, lam * inc.factor, lam)
        if inc.deny_rate is not None:
            deny = np.where(inside, inc.deny_rate, deny)
        if inc.tool is not None and hour_starts[0] <= a < hour_starts[-1] + HOUR:
            extra.append((a + 60, inc.tool[0], inc.tool[1], inc.calls))
    lam = np.where(hour_starts >= first_s, lam, 0.0)
    counts = rng.poisson(lam)
    total = int(counts.sum())
    if total == 0 and not extra:
        return None
    times = np.repeat(hour_starts, counts) * 1_000_000 + rng.integers(0, HOUR * 1_000_000, total)
    tools = np.array(profile.tools)
    # Tools are used unevenly: the first is the busiest.
    weights = 1.0 / np.arange(1, len(tools) + 1)
    picks = tools[rng.choice(len(tools), total, p=weights / weights.sum())]
    p_deny = np.repeat(deny, counts)
    roll = rng.random(total)
    decision = np.where(
        roll < p_deny,
        "deny",
        np.where(roll < p_deny + _REQUIRE_APPROVAL_SHARE, "require_approval", "allow"),
    )
    servers, names = picks[:, 0], picks[:, 1]
    for t, srv, name, n in extra:
        offsets = np.arange(n) * 7_000_000  # a few seconds apart
        times = np.concatenate([times, t * 1_000_000 + offsets])
        servers = np.concatenate([servers, np.full(n, srv)])
        names = np.concatenate([names, np.full(n, name)])
        decision = np.concatenate([decision, np.full(n, "allow")])
    account = np.full(len(times), profile.id)
    return times, account, servers, names, decision


def _insert(
    engine: Engine,
    times_us: np.ndarray,
    account: np.ndarray,
    server: np.ndarray,
    tool: np.ndarray,
    decision: np.ndarray,
    digest: np.ndarray,
) -> int:
    if engine.dialect.name == "sqlite":
        # The form SQLAlchemy's DateTime writes on SQLite, so UTCDateTime reads it back alike.
        stamps = np.datetime_as_string(times_us.astype("datetime64[us]"), unit="us")
        created: list[object] = [s.replace("T", " ") for s in stamps.tolist()]
        sql = (
            "INSERT INTO activity_log (account_id, created_at, server, tool, decision, args_hash)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        )
    else:
        created = [
            datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(t))
            for t in times_us.tolist()
        ]
        sql = (
            "INSERT INTO activity_log (account_id, created_at, server, tool, decision, args_hash)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
        )
    rows = list(
        zip(
            account.tolist(),
            created,
            server.tolist(),
            tool.tolist(),
            decision.tolist(),
            digest.tolist(),
            strict=True,
        )
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(sql, rows)  # type: ignore[arg-type]
    return len(rows)


def incident_summary(incidents: Sequence[Incident]) -> str:
    """One line per incident, for a benchmark's output."""
    return "\n".join(
        f"  {i.kind:16} {i.account_id:13} {i.start:%Y-%m-%d %H:%M}  {i.note}" for i in incidents
    )
