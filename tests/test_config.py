"""The settings registry: defaults < TOML file < environment, secrets from files, loud errors
naming the key, redaction, and help text and docs for every setting."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from appliance.config import ENV_PREFIX, Settings, ensure_secret_key, load_settings
from appliance.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
SETTINGS = [f.name for f in dataclasses.fields(Settings)]
SECRETS = [f.name for f in dataclasses.fields(Settings) if f.metadata["secret"]]


def config_file(tmp_path: Path, text: str) -> dict[str, str]:
    """An environment whose APPLIANCE_CONFIG names a TOML file holding `text`."""
    path = tmp_path / "appliance.toml"
    path.write_text(text)
    return {"APPLIANCE_CONFIG": str(path), "APPLIANCE_DATA_DIR": str(tmp_path / "data")}


def test_it_uses_the_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    settings = load_settings(env=config_file(tmp_path, ""))

    assert settings.bind == "127.0.0.1:8080"
    assert settings.web_workers == 2
    assert settings.model_profile == "cpu"
    assert settings.llm_timeout_s == 60.0
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'appliance.db'}"


def test_it_lets_the_file_override_the_defaults(tmp_path: Path) -> None:
    env = config_file(tmp_path, 'bind = "0.0.0.0:9000"\nweb_workers = 4\n'
                                'reply_models = ["a", "b"]\nllm_timeout_s = 5\n')

    settings = load_settings(env=env)

    assert settings.bind == "0.0.0.0:9000"
    assert settings.web_workers == 4
    assert settings.reply_models == ("a", "b")
    assert settings.llm_timeout_s == 5.0
    assert settings.web_threads == 8


def test_it_lets_the_environment_override_the_file(tmp_path: Path) -> None:
    env = config_file(tmp_path, 'bind = "0.0.0.0:9000"\nweb_workers = 4\n')
    env |= {"APPLIANCE_WEB_WORKERS": "6", "APPLIANCE_REPLY_MODELS": "x, y ,"}

    settings = load_settings(env=env)

    assert settings.web_workers == 6
    assert settings.bind == "0.0.0.0:9000"
    assert settings.reply_models == ("x", "y")


def test_it_lets_explicit_overrides_win(tmp_path: Path) -> None:
    env = config_file(tmp_path, "web_workers = 4\n") | {"APPLIANCE_WEB_WORKERS": "6"}

    assert load_settings(overrides={"web_workers": 3}, env=env).web_workers == 3


def test_it_takes_an_override_of_the_settings_own_type(tmp_path: Path) -> None:
    settings = load_settings(overrides={"reply_models": ("a", "b")},
                             env=config_file(tmp_path, ""))

    assert settings.reply_models == ("a", "b")


@pytest.mark.parametrize("name", SECRETS)
def test_it_reads_a_secret_from_a_file(tmp_path: Path, name: str) -> None:
    value = ("postgresql://app:s3cret@127.0.0.1:5432/app" if name == "database_url"
             else "from-a-credential-file")
    secret = tmp_path / "credential"
    secret.write_text(value + "\n")
    env = config_file(tmp_path, "") | {f"{ENV_PREFIX}{name.upper()}_FILE": str(secret)}

    assert getattr(load_settings(env=env), name) == value


def test_it_names_a_secret_file_it_cannot_read(tmp_path: Path) -> None:
    env = config_file(tmp_path, "") | {"APPLIANCE_SECRET_KEY_FILE": str(tmp_path / "absent")}

    with pytest.raises(ConfigError, match="APPLIANCE_SECRET_KEY_FILE"):
        load_settings(env=env)


def test_it_refuses_a_file_for_a_setting_that_is_not_secret(tmp_path: Path) -> None:
    value = tmp_path / "bind"
    value.write_text("0.0.0.0:1")
    env = config_file(tmp_path, "") | {"APPLIANCE_BIND_FILE": str(value)}

    with pytest.raises(ConfigError, match="APPLIANCE_BIND_FILE"):
        load_settings(env=env)


def test_it_names_an_unknown_key_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="web_wrokers"):
        load_settings(env=config_file(tmp_path, "web_wrokers = 4\n"))


@pytest.mark.parametrize(("toml", "key"), [
    ('web_workers = "many"\n', "web_workers"),
    ("web_workers = true\n", "web_workers"),
    ("bind = 8080\n", "bind"),
    ('llm_timeout_s = "soon"\n', "llm_timeout_s"),
    ("max_request_bytes = 0\n", "max_request_bytes"),
    ('log_level = "LOUD"\n', "log_level"),
    ('database_url = "mysql://x"\n', "database_url"),
])
def test_it_names_the_key_of_a_bad_value_in_the_file(tmp_path: Path, toml: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(env=config_file(tmp_path, toml))


@pytest.mark.parametrize(("var", "value", "key"), [
    ("APPLIANCE_WEB_WORKERS", "two", "web_workers"),
    ("APPLIANCE_LLM_TIMEOUT_S", "1m", "llm_timeout_s"),
    ("APPLIANCE_WEB_THREADS", "-1", "web_threads"),
])
def test_it_names_the_key_of_a_bad_value_in_the_environment(
    tmp_path: Path, var: str, value: str, key: str
) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(env=config_file(tmp_path, "") | {var: value})


@pytest.mark.parametrize(("var", "value", "key"), [
    ("APPLIANCE_LLM_TIMEOUT_S", "0", "llm_timeout_s"),
    ("APPLIANCE_LLM_TIMEOUT_S", "-1", "llm_timeout_s"),
    ("APPLIANCE_LLM_TIMEOUT_S", "nan", "llm_timeout_s"),
    ("APPLIANCE_WEB_TIMEOUT_S", "-30", "web_timeout_s"),
    ("APPLIANCE_CONVERSATION_IDLE_CLOSE_MINUTES", "-5", "conversation_idle_close_minutes"),
])
def test_it_refuses_a_value_out_of_range(tmp_path: Path, var: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(env=config_file(tmp_path, "") | {var: value})


def test_it_refuses_a_boolean_for_a_number(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="llm_timeout_s"):
        load_settings(env=config_file(tmp_path, "llm_timeout_s = true\n"))


@pytest.mark.parametrize("profile", ["tpu", "CPU", ""])
def test_it_refuses_an_unknown_model_profile(tmp_path: Path, profile: str) -> None:
    env = config_file(tmp_path, "") | {"APPLIANCE_MODEL_PROFILE": profile}

    with pytest.raises(ConfigError, match="model_profile"):
        load_settings(env=env)


def test_it_refuses_a_config_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={"APPLIANCE_CONFIG": str(tmp_path / "absent.toml")})


def test_it_refuses_a_malformed_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"appliance\.toml"):
        load_settings(env=config_file(tmp_path, "bind = \n"))


def test_it_redacts_secrets_in_public_items(tmp_path: Path) -> None:
    env = config_file(tmp_path, "") | {
        "APPLIANCE_SECRET_KEY": "sk-very-secret-value",
        "APPLIANCE_DATABASE_URL": "postgresql://app:pa55word-xyz@db.local:5432/appliance",
    }

    rows = {name: value for name, value, _ in load_settings(env=env).public_items()}

    assert rows["secret_key"] == "***"
    assert rows["database_url"] == "postgresql://app:***@db.local:5432/appliance"
    shown = " ".join(rows.values())
    assert "sk-very-secret-value" not in shown
    assert "pa55word-xyz" not in shown
    assert rows["bind"] == "127.0.0.1:8080"


def test_it_lists_every_setting_in_public_items(tmp_path: Path) -> None:
    rows = load_settings(env=config_file(tmp_path, "")).public_items()

    assert [name for name, _, _ in rows] == SETTINGS


@pytest.mark.parametrize("name", SETTINGS)
def test_it_has_help_text_for_every_setting(name: str) -> None:
    field = next(f for f in dataclasses.fields(Settings) if f.name == name)

    assert field.metadata["help"].strip()


@pytest.mark.parametrize("name", SETTINGS)
def test_it_documents_every_setting(name: str) -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()

    assert f"`{name}`" in doc
    assert f"`{ENV_PREFIX}{name.upper()}`" in doc


def test_it_generates_the_secret_key_once_readable_only_by_its_owner(tmp_path: Path) -> None:
    settings = load_settings(env=config_file(tmp_path, ""))

    first = ensure_secret_key(settings)
    second = ensure_secret_key(settings)

    assert first.secret_key
    assert first.secret_key == second.secret_key
    mode = stat.S_IMODE(os.stat(settings.data_dir / "secret_key").st_mode)
    assert mode == 0o600
