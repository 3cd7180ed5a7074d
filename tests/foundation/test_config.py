from __future__ import annotations

import json
from pathlib import Path

import pytest

from scheduler.config import ConfigError, load_settings
from tests.cli_runner import run_cli


def test_defaults_without_a_file() -> None:
    loaded = load_settings(None, environ={})
    assert loaded.source == "built-in defaults"
    assert loaded.settings.database.url == "sqlite:///./enforgate.db"
    assert loaded.settings.delivery.timeout_s == 10
    assert loaded.settings.delivery.connect_timeout_s == 5
    assert loaded.settings.delivery.allow_insecure_localhost is False
    assert loaded.settings.scheduler.tail_interval_s == 1


def test_enforgate_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "enforgate.toml").write_text("[scheduler]\ntail_interval_s = 2.5\n")
    loaded = load_settings(None, environ={})
    assert loaded.source == "enforgate.toml"
    assert loaded.settings.scheduler.tail_interval_s == 2.5


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[database]\nurl = "sqlite:///a.db"\n')
    loaded = load_settings(path, environ={"ENFORGATE_DATABASE__URL": "sqlite:///b.db"})
    assert loaded.settings.database.url == "sqlite:///b.db"
    assert loaded.overrides == ("ENFORGATE_DATABASE__URL",)


def test_enforgate_config_variable_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text("[delivery]\ntimeout_s = 3\n")
    loaded = load_settings(None, environ={"ENFORGATE_CONFIG": str(path)})
    assert loaded.settings.delivery.timeout_s == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[delivery]\ntimeout_s = 0\n", "delivery.timeout_s = 0: Input should be greater than 0"),
        ("[delivery]\nallow_insecure_localhost = 'maybe'\n", "delivery.allow_insecure_localhost"),
        ("[delivery]\ntimeoutt_s = 3\n", "delivery.timeoutt_s: unknown key; allowed here:"),
        ('[database]\nurl = "mysql://h/db"\n', "allowed: sqlite, postgresql"),
        ("[scheduler\n", "not valid TOML"),
        ("[logging]\nformat = 'xml'\n", "Input should be 'text' or 'json'"),
    ],
)
def test_invalid_values_name_the_file_the_key_and_what_is_allowed(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_a_bad_override_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="environment variable ENFORGATE_DELIVERY__TIMEOUT_S"):
        load_settings(None, environ={"ENFORGATE_DELIVERY__TIMEOUT_S": "soon"})


def test_config_check_exits_2_with_the_message_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[delivery]\nconnect_timeout_s = -1\n")
    result = run_cli("--config", str(path), "config", "check", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid configuration:")
    assert "delivery.connect_timeout_s = -1" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "nope.toml"), "config", "check", cwd=tmp_path)
    assert result.returncode == 2
    assert "config file not found" in result.stderr


def test_config_check_redacts_the_database_password(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[database]\nurl = "postgresql://app:hunter2@db.internal/enforgate"\n')
    result = run_cli("--config", str(path), "config", "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    effective = json.loads(result.stdout[result.stdout.index("{") :])
    assert effective["database"]["url"] == "postgresql://app:***@db.internal/enforgate"


def test_an_unknown_key_in_a_per_account_override_lists_the_allowed_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[detectors.call_spike.accounts."acc_1"]\nmin_ratoi = 4\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "detectors.call_spike.accounts.acc_1.min_ratoi: unknown key" in str(info.value)
    assert "min_ratio" in str(info.value)
