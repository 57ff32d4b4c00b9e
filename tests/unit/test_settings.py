"""Settings: parsing, environment overrides, refusals, and documentation of every setting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dvm.config import RANGES, SECTIONS, SettingsError, load_relays, load_settings, read_secret
from dvm.errors import ConfigError, error_codes
from dvm.protocol.methods import Method

OPERATIONS = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()


@pytest.mark.parametrize(
    "setting", [f"{name}.{f.name}" for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
)
def test_every_setting_is_documented(setting):
    assert f"| `{setting}` |" in OPERATIONS, f"{setting} is missing from docs/operations.md"


@pytest.mark.parametrize(
    "setting",
    [
        f"{name}.{f.name}"
        for name, cls in SECTIONS.items()
        for f in dataclasses.fields(cls)
        if f.type in ("int", "float")
    ],
)
def test_every_numeric_setting_has_a_range_that_holds_its_default(setting):
    low, high = RANGES[setting]
    section, name = setting.split(".")
    default = getattr(SECTIONS[section](), name)
    assert low <= default <= high


def test_every_problem_is_reported_at_once_not_just_the_first(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("[mail]\nport = 99999\nhots = 1\n[service]\nmax_code_attempts = 0\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ={})
    named = sorted(p.setting for p in caught.value.problems)
    assert named == ["mail.hots", "mail.port", "service.max_code_attempts"]
    assert "and 2 more" in str(caught.value)


def test_every_error_code_is_documented_in_the_protocol():
    protocol = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    for code in error_codes():
        assert f"`{code}`" in protocol


def test_defaults_without_a_file(tmp_path):
    settings = load_settings(None, environ={})
    rules = settings.service.rules()
    assert rules.intake.pow_bits[Method.REQUEST_ACCOUNT] == 16
    assert rules.intake.pow_bits[Method.ACTIVATE] == 12
    assert rules.accounts.code_ttl_s == 900


def test_file_values_and_environment_overrides(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[mail]\nhost = "smtp.example"\nport = 587\n[service]\ncode_ttl_s = 600\n')
    settings = load_settings(path, environ={"SIGIT_MAIL_PORT": "2525", "SIGIT_SERVICE_POW_OTHER_BITS": "10"})
    assert (settings.mail.host, settings.mail.port) == ("smtp.example", 2525)
    assert settings.service.code_ttl_s == 600 and settings.service.pow_other_bits == 10
    assert settings.path("db.sqlite3") == tmp_path / "db.sqlite3"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[nope]\n", "unknown settings section"),
        ("[mail]\nhots = 'x'\n", "mail.hots: unknown setting"),
        ("[mail]\nport = 'x'\n", "mail.port: must be of type int"),
        ("[mail]\ntls = 'sometimes'\n", "mail.tls: must be one of"),
        ("[service]\ncode_ttl_s = -1\n", "service.code_ttl_s: must be between 60 and 86400"),
        ("[service\n", "s.toml"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(tmp_path, text, error):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=error):
        load_settings(path, environ={})


def test_bad_environment_values_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="SIGIT_MAIL_PORT"):
        load_settings(None, environ={"SIGIT_MAIL_PORT": "many"})


def test_secrets_come_from_env_then_credentials_then_file(tmp_path):
    settings = load_settings(None, environ={})
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "dvm_key").write_text("from-credentials\n")
    (tmp_path / "key").write_text("from-file\n")
    env = {"SIGIT_DVM_KEY": "from-env", "CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}
    assert read_secret("dvm_key", str(tmp_path / "key"), settings, env) == "from-env"
    del env["SIGIT_DVM_KEY"]
    assert read_secret("dvm_key", str(tmp_path / "key"), settings, env) == "from-credentials"
    assert read_secret("dvm_key", str(tmp_path / "key"), settings, {}) == "from-file"
    with pytest.raises(ConfigError, match="not configured"):
        read_secret("dvm_key", "", settings, {})


def test_relays_file(tmp_path):
    path = tmp_path / "relays.toml"
    path.write_text('relays = ["wss://a.example/", "wss://a.example", "ws://127.0.0.1:7000"]\n')
    assert load_relays(path) == ("wss://a.example", "ws://127.0.0.1:7000")
    path.write_text('relays = ["https://nope"]\n')
    with pytest.raises(ConfigError, match="not a ws"):
        load_relays(path)
    path.write_text('relay = ["wss://a"]\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_relays(path)


def test_private_mode_and_grace_reach_the_rules(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("[service]\nprivate_mode = true\nemail_grace_s = 3600\n")
    rules = load_settings(path, environ={}).service.rules().accounts
    assert rules.private_mode is True and rules.email_grace_s == 3600
    env = load_settings(None, environ={"SIGIT_SERVICE_PRIVATE_MODE": "yes"}).service.rules().accounts
    assert env.private_mode is True
