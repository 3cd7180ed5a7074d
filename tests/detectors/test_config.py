from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from detectors import CallSpikeConfig, DetectorsConfig, UnknownDetectorError
from scheduler.config import ConfigError, load_settings


def test_every_detector_is_enabled_by_default_with_documented_defaults() -> None:
    config = DetectorsConfig()
    assert config.call_spike.enabled
    assert config.block_rate_jump.enabled
    assert config.new_tool.enabled
    assert config.call_spike.window_s == 3600
    assert config.new_tool.window_s == 300
    assert config.settle_delay_s == 120


def test_an_account_override_changes_only_that_accounts_thresholds() -> None:
    config = CallSpikeConfig.model_validate({"accounts": {"noisy": {"min_ratio": 8}}})
    assert config.for_account("noisy").min_ratio == 8
    assert config.for_account("noisy").min_calls == config.min_calls
    assert config.for_account("quiet").min_ratio == config.min_ratio


def test_an_unknown_detector_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownDetectorError, match="known: call_spike"):
        DetectorsConfig().detector("latency")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "[detectors.call_spike]\nwindow_s = 1000\n",
            "detectors.call_spike.window_s = 1000: must be a multiple of 300 that divides a day",
        ),
        (
            "[detectors.block_rate_jump]\nmin_rise_pp = 0\n",
            "detectors.block_rate_jump.min_rise_pp = 0: Input should be greater than 0",
        ),
        (
            "[detectors.new_tool]\nwarmup = 5\n",
            "detectors.new_tool.warmup: unknown key; allowed here: accounts, enabled",
        ),
        (
            "[detectors.call_spike]\nseasonal_days = 2\nmin_seasonal_days = 4\n",
            "min_seasonal_days (4) must be <= seasonal_days (2)",
        ),
        (
            "[detectors]\nsettle_delay_s = 600\nreread_margin_s = 60\n",
            "reread_margin_s (60) must be >= settle_delay_s (600)",
        ),
        (
            '[detectors.call_spike.accounts."acct_9"]\nmin_ratio = 0.5\n',
            "detectors.call_spike.accounts.acct_9.min_ratio = 0.5: "
            "Input should be greater than or equal to 1",
        ),
        (
            "[detectors.new_tool]\nseverity = 'urgent'\n",
            "detectors.new_tool.severity = 'urgent': Input should be 'low', 'medium' or 'high'",
        ),
    ],
)
def test_invalid_detector_settings_name_the_file_the_key_and_what_is_allowed(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_severity_bands_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="severity_high"):
        CallSpikeConfig(severity_medium=4, severity_high=2)
