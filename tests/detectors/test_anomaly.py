from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

import detectors
from detectors import Anomaly
from tests.detectors.series import WED


def _anomaly(**changes: object) -> Anomaly:
    base = Anomaly(
        type="call_spike",
        account_id="acct_1",
        server=None,
        tool=None,
        window_start=WED,
        window_end=WED + timedelta(hours=1),
        observed=500.0,
        baseline=100.0,
        threshold=300.0,
        severity="medium",
        summary="s",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_the_same_anomaly_found_twice_has_the_same_fingerprint_and_id() -> None:
    first, again = _anomaly(), _anomaly(observed=501.0, summary="recounted")
    assert first.fingerprint == again.fingerprint
    assert first.anomaly_id == again.anomaly_id
    assert first.anomaly_id.startswith("anom_")


def test_a_windowed_anomaly_in_another_window_is_another_anomaly() -> None:
    later = _anomaly(window_start=WED + timedelta(hours=1), window_end=WED + timedelta(hours=2))
    assert later.fingerprint != _anomaly().fingerprint


def test_a_new_tool_is_the_same_anomaly_whatever_the_window() -> None:
    one = _anomaly(type="new_tool", server="gh", tool="delete_repo")
    other = replace(one, window_start=WED + timedelta(days=3), window_end=WED + timedelta(days=3))
    assert one.anomaly_id == other.anomaly_id
    assert one.anomaly_id != replace(one, tool="create_repo").anomaly_id


def test_naive_window_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        _anomaly(window_start=datetime(2026, 6, 17))


def test_all_is_sorted_and_exported() -> None:
    # Sorted as ruff's RUF022 sorts it: CONSTANTS, then Classes, then functions.
    def kind(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert detectors.__all__ == sorted(detectors.__all__, key=kind)
    for name in detectors.__all__:
        assert hasattr(detectors, name)
