from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from detectors import CallSpikeConfig, CallSpikeDetector, InvalidObservationsError
from tests.detectors.series import DAY, HOUR, WED, daily_rhythm, hourly, observations


def _detector(**settings: object) -> CallSpikeDetector:
    return CallSpikeDetector(CallSpikeConfig.model_validate(settings))


def _flat_then(
    value: int, at: datetime, usual: int = 100, days: int = 8
) -> list[dict[str, object]]:
    """``usual`` calls every hour for ``days`` days before ``at``, then ``value`` at ``at``."""
    start = at - timedelta(days=days)
    return hourly("a", start, days * 24 + 1, lambda t: value if t == at else usual)


def test_a_fivefold_rise_fires_with_observed_baseline_and_threshold() -> None:
    at = WED + timedelta(hours=10)
    [anomaly] = _detector().judge(observations(at, _flat_then(500, at)))
    assert anomaly.type == "call_spike"
    assert (anomaly.account_id, anomaly.server, anomaly.tool) == ("a", None, None)
    assert anomaly.observed == 500
    assert anomaly.baseline == 100
    assert anomaly.threshold == 300  # min_ratio 3 x baseline 100 is the binding guard
    assert (anomaly.window_start, anomaly.window_end) == (at, at + timedelta(hours=1))
    assert "500" in anomaly.summary
    assert "5.0x its usual 100" in anomaly.summary


def test_a_rise_below_the_ratio_does_not_fire() -> None:
    at = WED + timedelta(hours=10)
    assert _detector().judge(observations(at, _flat_then(290, at))) == []


def test_the_daily_morning_ramp_is_not_a_spike() -> None:
    start = WED - timedelta(days=8)
    rows = hourly("a", start, 9 * 24, daily_rhythm)
    morning = WED + timedelta(hours=9)  # from 5% of the peak at 06:00 to the peak at 09:00
    detector = _detector()
    for hour in range(24):
        at = WED + timedelta(hours=hour)
        assert detector.judge(observations(at, rows)) == [], at
    assert daily_rhythm(morning) > 10 * daily_rhythm(morning - timedelta(hours=3))


def test_monday_after_a_quiet_weekend_is_not_a_spike() -> None:
    monday = WED + timedelta(days=5)  # 2026-06-22
    assert monday.weekday() == 0
    rows = hourly("a", monday - timedelta(days=14), 15 * 24, daily_rhythm)
    at = monday + timedelta(hours=10)
    assert _detector().judge(observations(at, rows)) == []


def test_a_quiet_history_cannot_make_a_spike_by_itself() -> None:
    # One call an hour, then 20: a 20x "rise" that the baseline floor (10) keeps quiet.
    at = WED + timedelta(hours=10)
    rows = _flat_then(20, at, usual=1)
    assert _detector(min_calls=5).judge(observations(at, rows)) == []


def test_a_window_under_the_minimum_volume_does_not_fire() -> None:
    at = WED + timedelta(hours=10)
    assert _detector().judge(observations(at, _flat_then(45, at, usual=2))) == []


def test_the_robust_score_guard_holds_back_a_noisy_series() -> None:
    at = WED + timedelta(hours=10)
    start = at - timedelta(days=8)
    rows = hourly("a", start, 8 * 24 + 1, lambda t: 1500 if t == at else 100 * (1 + t.day % 7))
    # Days vary from 100 to 700: median 400, MAD 200; 1500 is not far out in that noise.
    assert _detector(min_ratio=1.5, weekly=False).judge(observations(at, rows)) == []


def test_an_earlier_spike_does_not_raise_the_baseline() -> None:
    at = WED + timedelta(hours=10)
    earlier = at - timedelta(days=2)
    rows = hourly(
        "a",
        at - timedelta(days=8),
        8 * 24 + 1,
        lambda t: 800 if t in (at, earlier) else 100,
    )
    [anomaly] = _detector().judge(observations(at, rows))
    assert anomaly.baseline == 100


def test_without_enough_history_nothing_is_judged() -> None:
    at = WED + timedelta(hours=10)
    rows = hourly("a", at - timedelta(hours=5), 6, lambda t: 5000 if t == at else 10)
    assert _detector().judge(observations(at, rows)) == []


def test_with_a_short_history_the_recent_windows_stand_in() -> None:
    at = WED + timedelta(hours=10)
    rows = hourly("a", at - timedelta(hours=20), 21, lambda t: 900 if t == at else 100)
    assert _detector().judge(observations(at, rows)) == []  # off by default
    [anomaly] = _detector(recent_windows=24).judge(observations(at, rows))
    assert anomaly.baseline == 100


@pytest.mark.parametrize(
    ("observed", "severity"),
    [(310, "low"), (450, "medium"), (700, "high")],
)
def test_severity_follows_how_far_past_the_threshold(observed: int, severity: str) -> None:
    # baseline 100, threshold 300: the alarming rise is 200; 1.5x of it is 400, 3x is 700.
    at = WED + timedelta(hours=10)
    [anomaly] = _detector().judge(observations(at, _flat_then(observed, at)))
    assert anomaly.severity == severity


def test_a_noisy_account_can_have_a_higher_ratio() -> None:
    at = WED + timedelta(hours=10)
    rows = _flat_then(500, at)
    rows += [dict(r, account_id="noisy") for r in rows]
    detector = _detector(accounts={"noisy": {"min_ratio": 6}})
    assert [a.account_id for a in detector.judge(observations(at, rows))] == ["a"]


def test_per_tool_spikes_name_the_server_and_tool_when_configured() -> None:
    at = WED + timedelta(hours=10)
    tools = [
        dict(r, server="gh", tool="t" + str(i))
        for i, value in enumerate((100, 900))
        for r in _flat_then(value, at, usual=100)
    ]
    accounts = _flat_then(1000, at, usual=200)
    obs = observations(at, accounts, tools=tools)
    found = _detector(per_tool=True).judge(obs)
    assert [(a.account_id, a.server, a.tool) for a in found] == [
        ("a", None, None),
        ("a", "gh", "t1"),
    ]
    assert _detector().judge(obs)[0].tool is None
    assert len(_detector().judge(obs)) == 1


def test_a_misaligned_window_is_refused() -> None:
    at = WED + timedelta(minutes=30)
    with pytest.raises(InvalidObservationsError, match="aligned 3600 s windows"):
        _detector().judge(observations(at, []))


def test_judging_twice_gives_the_same_anomalies() -> None:
    at = WED + timedelta(hours=10)
    obs = observations(at, _flat_then(900, at))
    assert _detector().judge(obs) == _detector().judge(obs)


def test_counts_after_the_window_are_refused() -> None:
    at = WED + timedelta(hours=10)
    obs = observations(at, _flat_then(900, at))
    later = obs.accounts.assign(start=obs.accounts["start"] + 2 * HOUR)
    with pytest.raises(InvalidObservationsError, match="after the window"):
        type(obs)(obs.window_start, obs.window_end, accounts=later)
    assert DAY == 24 * HOUR


def test_a_weekend_hour_is_compared_with_weekend_hours() -> None:
    saturday = WED + timedelta(days=3, hours=10)
    rows = hourly("a", saturday - timedelta(days=28), 28 * 24, daily_rhythm)
    rows += hourly("a", saturday, 1, lambda _t: 400)  # 4x a weekend hour, under a weekday's 1000
    [anomaly] = _detector().judge(observations(saturday, rows))
    assert anomaly.baseline == daily_rhythm(saturday)
    assert _detector(weekly=False).judge(observations(saturday, rows)) == []
