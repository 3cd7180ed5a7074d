from __future__ import annotations

from datetime import timedelta

import pytest

from detectors import BlockRateConfig, BlockRateJumpDetector
from tests.detectors.series import WED, hourly, observations

AT = WED + timedelta(hours=10)


def _detector(**settings: object) -> BlockRateJumpDetector:
    return BlockRateJumpDetector(BlockRateConfig.model_validate(settings))


def _rows(calls: int, denied: int, *, usual_calls: int = 400, usual_rate: float = 0.05) -> list:
    """A week at ``usual_rate`` denied, then ``denied`` of ``calls`` in the window at AT."""
    return hourly(
        "a",
        AT - timedelta(days=7),
        7 * 24 + 1,
        lambda t: calls if t == AT else usual_calls,
        lambda t: denied if t == AT else round(usual_calls * usual_rate),
    )


def test_three_hundred_of_four_hundred_denied_fires() -> None:
    [anomaly] = _detector().judge(observations(AT, _rows(400, 300)))
    assert anomaly.type == "block_rate_jump"
    assert anomaly.observed == 0.75
    assert anomaly.baseline == 0.05
    assert 0.15 <= anomaly.threshold < 0.2
    assert anomaly.severity == "high"
    assert "300 of account a's 400 calls were denied" in anomaly.summary
    assert "up 70 points from its usual 5.0%" in anomaly.summary


def test_three_of_four_denied_is_not_an_alarm() -> None:
    assert _detector().judge(observations(AT, _rows(4, 3))) == []


def test_the_test_on_proportions_decides_when_the_volume_guard_is_low() -> None:
    # 8 of 40 is a 15 point rise, but at a usual 5% that is z 4.0, under 4.5; 12 of 40 is not.
    assert _detector(min_calls=10).judge(observations(AT, _rows(40, 8))) == []
    assert _detector(min_calls=10).judge(observations(AT, _rows(40, 12))) != []


def test_a_significant_but_small_rise_in_points_does_not_fire() -> None:
    # 10,000 calls at 10% against a usual 5%: hugely significant, only 5 points.
    rows = _rows(10_000, 1000, usual_calls=10_000)
    assert _detector().judge(observations(AT, rows)) == []
    assert _detector(min_rise_pp=4).judge(observations(AT, rows)) != []


def test_a_clean_account_has_a_floor_on_its_usual_share() -> None:
    [anomaly] = _detector().judge(observations(AT, _rows(400, 80, usual_rate=0.0)))
    assert anomaly.baseline == 0.01


def test_an_account_without_enough_history_is_not_judged() -> None:
    rows = [r for r in _rows(400, 300) if r["start"] >= AT.timestamp() - 1800]
    assert _detector().judge(observations(AT, rows)) == []


def test_a_tolerant_account_can_need_a_bigger_rise() -> None:
    detector = _detector(accounts={"a": {"min_rise_pp": 80}})
    assert detector.judge(observations(AT, _rows(400, 300))) == []


@pytest.mark.parametrize(("denied", "severity"), [(70, "low"), (110, "medium"), (300, "high")])
def test_severity_follows_the_rise_in_points(denied: int, severity: str) -> None:
    [anomaly] = _detector().judge(observations(AT, _rows(400, denied)))
    assert anomaly.severity == severity
