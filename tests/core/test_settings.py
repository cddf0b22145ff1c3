"""xtts_core.settings: YAML + environment settings for the services (torch-free).

Real files under tmp_path; the environment is changed only through monkeypatch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from pydantic import Field, ValidationError
from pydantic_settings import SettingsConfigDict

import xtts_core.settings as settings_module
from xtts_core.errors import XttsError
from xtts_core.settings import ServiceSettings, SettingsError, SettingsSection, load_settings


class Service(SettingsSection):
    host: str = "127.0.0.1"
    port: int = 8000


class Model(SettingsSection):
    directory: Path | None = None
    language: str = "en"


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="XTTS_TEST_")

    service: Service = Field(default_factory=Service)
    model: Model = Field(default_factory=Model)
    log_level: str = "info"


class DoublePrefixSettings(DemoSettings):
    model_config = SettingsConfigDict(env_prefix="XTTS_TEST__")


class NamedFileEnvSettings(DemoSettings):
    config_file_env = "XTTS_OTHER_CONFIG"


class NoPrefixSettings(ServiceSettings):
    port: int = 1


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(("XTTS_TEST", "XTTS_OTHER")):
            monkeypatch.delenv(name)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def yaml_file(tmp_path: Path) -> Path:
    return write(
        tmp_path / "service.yaml",
        "service:\n  host: 0.0.0.0\n  port: 7000\nmodel:\n  language: ru\nlog_level: debug\n",
    )


def test_defaults_without_file_or_env() -> None:
    settings = load_settings(DemoSettings)
    assert settings == DemoSettings(service=Service(), model=Model(), log_level="info")
    assert settings.loaded_from is None


def test_yaml_file_from_path(yaml_file: Path) -> None:
    settings = load_settings(DemoSettings, yaml_file)
    assert settings.service == Service(host="0.0.0.0", port=7000)
    assert settings.model.language == "ru"
    assert settings.log_level == "debug"
    assert settings.loaded_from == yaml_file


def test_yaml_file_from_env_var(yaml_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTTS_TEST_CONFIG_FILE", str(yaml_file))
    assert DemoSettings.config_file_env_var() == "XTTS_TEST_CONFIG_FILE"
    settings = load_settings(DemoSettings)
    assert settings.service.port == 7000
    assert settings.loaded_from == yaml_file
    assert DemoSettings().loaded_from == yaml_file  # the plain constructor reads it too


def test_explicit_path_beats_env_var(
    yaml_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = write(tmp_path / "other.yaml", "log_level: warning\n")
    monkeypatch.setenv("XTTS_TEST_CONFIG_FILE", str(yaml_file))
    settings = load_settings(DemoSettings, other)
    assert (settings.log_level, settings.service.port, settings.loaded_from) == (
        "warning",
        8000,
        other,
    )


def test_priority_yaml_then_env_then_kwargs(
    yaml_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XTTS_TEST_LOG_LEVEL", "error")
    monkeypatch.setenv("XTTS_TEST_SERVICE__PORT", "9")
    settings = load_settings(DemoSettings, yaml_file)
    assert settings.log_level == "error"  # env > YAML
    assert settings.service == Service(
        host="0.0.0.0", port=9
    )  # nested env merges into the YAML section
    assert settings.model.language == "ru"  # YAML > default
    settings = load_settings(DemoSettings, yaml_file, log_level="critical", service={"port": 10})
    assert settings.log_level == "critical"  # kwargs > env
    assert settings.service.port == 10


def test_nested_env_override_with_double_underscore_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTTS_TEST__SERVICE__PORT", "9")
    assert load_settings(DoublePrefixSettings).service.port == 9
    assert load_settings(DemoSettings).service.port == 8000  # not DemoSettings' spelling


def test_env_var_name_can_be_chosen(yaml_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTTS_OTHER_CONFIG", str(yaml_file))
    monkeypatch.setenv("XTTS_TEST_CONFIG_FILE", "/nonexistent.yaml")
    assert load_settings(NamedFileEnvSettings).loaded_from == yaml_file


def test_no_prefix_means_no_env_file_var(yaml_file: Path) -> None:
    assert NoPrefixSettings.config_file_env_var() is None
    assert load_settings(NoPrefixSettings).port == 1
    assert load_settings(NoPrefixSettings, write(yaml_file, "port: 2\n")).port == 2


def test_empty_env_var_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTTS_TEST_CONFIG_FILE", "")
    assert load_settings(DemoSettings).loaded_from is None


def test_empty_yaml_file_means_defaults(tmp_path: Path) -> None:
    settings = load_settings(DemoSettings, write(tmp_path / "empty.yaml", "# nothing yet\n"))
    assert settings.service == Service()


def test_relative_and_home_paths_resolve(
    yaml_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(DemoSettings, "service.yaml").loaded_from == yaml_file
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings(DemoSettings, "~/service.yaml").loaded_from == yaml_file


def test_loading_is_logged(yaml_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="xtts_core.settings"):
        load_settings(DemoSettings, yaml_file)
    assert f"DemoSettings loaded from {yaml_file}" in caplog.messages


# --- errors ---------------------------------------------------------------------------------------


def test_missing_file_named_by_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.yaml"
    monkeypatch.setenv("XTTS_TEST_CONFIG_FILE", str(missing))
    expected = f"config file XTTS_TEST_CONFIG_FILE={missing} does not exist"
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings)
    assert str(info.value) == expected
    with pytest.raises(SettingsError, match="does not exist"):
        DemoSettings()
    assert isinstance(info.value, XttsError)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings, tmp_path / "nope.yaml")
    assert str(info.value) == f"config file {tmp_path / 'nope.yaml'} does not exist"


def test_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"is not a file$"):
        load_settings(DemoSettings, tmp_path)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", "service:\n  port: [1, 2\nlog_level: x\n")
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings, bad)
    message = str(info.value)
    assert message.startswith(f"config file {bad} is not valid YAML: ")
    assert "(line " in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "kind"), [("- 1\n- 2\n", "list"), ("just words\n", "str"), ("42\n", "int")]
)
def test_yaml_that_is_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path / "odd.yaml", text)
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings, path)
    assert (
        str(info.value)
        == f"config file {path} must hold a mapping of settings at the top level, got {kind}"
    )


def test_undecodable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"log_level: \xff\xfe\n")
    with pytest.raises(SettingsError, match=f"cannot read config file {path}"):
        load_settings(DemoSettings, path)


def test_unknown_keys_in_yaml_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "typo.yaml", "servce:\n  port: 1\nservice:\n  prot: 2\n")
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings, path)
    assert str(info.value) == (
        f"invalid DemoSettings settings (from {path} and XTTS_TEST_* environment variables): "
        "service.prot: unknown key (known keys: host, port); "
        "servce: unknown key (known keys: log_level, model, service)"
    )


def test_unknown_nested_env_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTTS_TEST_SERVICE__PROT", "2")
    with pytest.raises(SettingsError, match=r"service\.prot: unknown key"):
        load_settings(DemoSettings)


def test_bad_value_names_the_field_and_file(
    yaml_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XTTS_TEST_SERVICE__PORT", "eighty")
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings, yaml_file)
    message = str(info.value)
    assert str(yaml_file) in message
    assert "service.port: Input should be a valid integer" in message
    assert "(got 'eighty')" in message
    assert "\n" not in message


def test_constructor_raises_validation_error_for_bad_values(yaml_file: Path) -> None:
    write(yaml_file, "service:\n  port: many\n")
    with pytest.raises(ValidationError):
        DemoSettings(_config_file=yaml_file)


def test_all_names_exist() -> None:
    for name in settings_module.__all__:
        assert hasattr(settings_module, name), name
