"""Broker settings: the example file, env overrides, and errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from broker_servers import write_tls_files
from pydantic import BaseModel

from xtts_broker.serve import hypercorn_config, main
from xtts_broker.settings import BrokerSettings, is_loopback_host, load_broker_settings
from xtts_core.errors import SettingsError

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "broker.example.yaml"
HASH = "sha256:" + "0" * 64


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("XTTS_BROKER_CONFIG_FILE", "XTTS_BROKER_SERVICE__PORT"):
        monkeypatch.delenv(name, raising=False)


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def _flatten(data: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in data.items():
        if isinstance(value, dict):
            keys |= _flatten(value, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def test_example_documents_every_key_and_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _flatten(yaml.safe_load(EXAMPLE.read_text())) == _keys(BrokerSettings)
    monkeypatch.setenv("XTTS_BROKER_CONFIG_FILE", str(EXAMPLE))
    monkeypatch.setenv("XTTS_BROKER_SERVICE__PORT", "19001")
    settings = load_broker_settings()
    assert settings.service.port == 19001  # env beats the file
    assert settings.service.strategy == "deep"
    assert settings.cluster.fresh_for_s == 6.0
    assert settings.loaded_from == EXAMPLE


def _write(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"auth": {"enabled": False}}, "cluster: required"),
        ({"cluster": {"secret": "x" * 16}}, "auth: required"),
        ({"cluster": {"secret": "short"}, "auth": {"enabled": False}}, "at least 16 characters"),
        ({"cluster": {"secret": "x" * 16}, "auth": {}}, "api_key_hashes is empty"),
        ({"cluster": {"secret": "x" * 16}, "auth": {"api_key_hashes": ["plain"]}}, "sha256:<64"),
        (
            {"cluster": {"secret": "x" * 16, "heartbeat_ttl_s": 1}, "auth": {"enabled": False}},
            "must exceed heartbeat_interval_s",
        ),
        (
            {
                "cluster": {"secret": "x" * 16},
                "auth": {"enabled": False},
                "service": {"strategy": "deepest"},
            },
            "service.strategy",
        ),
        (
            {"cluster": {"secret": "x" * 16}, "auth": {"enabled": False}, "service": {"prot": 1}},
            "service.prot: unknown key",
        ),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SettingsError, match=r"broker\.yaml") as error:
        load_broker_settings(_write(tmp_path, data))
    assert fragment in str(error.value)


def test_minimal_settings(tmp_path: Path) -> None:
    settings = load_broker_settings(
        _write(tmp_path, {"cluster": {"secret": "y" * 20}, "auth": {"api_key_hashes": [HASH]}})
    )
    assert settings.service.port == 19000
    assert not settings.service.on_loopback
    assert settings.cluster.secret.get_secret_value() == "y" * 20
    assert "y" * 20 not in repr(settings)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("gpu.localhost", True),
        ("10.0.0.5", False),
        ("gpu.example", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_cli_reports_bad_config_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xtts-broker: config file") and err.count("\n") == 1


def test_cli_hashes_keys_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("example-client-key\n"))
    assert main(["hash-key"]) == 0
    assert capsys.readouterr().out.strip() in EXAMPLE.read_text()


def _tls_settings(tmp_path: Path, **service: str) -> BrokerSettings:
    return load_broker_settings(
        _write(
            tmp_path,
            {"cluster": {"secret": "y" * 20}, "auth": {"enabled": False}, "service": service},
        )
    )


def test_tls_files_load_and_reach_hypercorn(tmp_path: Path) -> None:
    tls = write_tls_files(tmp_path)
    settings = _tls_settings(tmp_path, tls_certfile=str(tls.certfile), tls_keyfile=str(tls.keyfile))
    assert settings.service.tls
    config = hypercorn_config(settings)
    assert config.ssl_enabled
    assert (config.certfile, config.keyfile) == (str(tls.certfile), str(tls.keyfile))
    assert not _tls_settings(tmp_path).service.tls
    assert not hypercorn_config(_tls_settings(tmp_path)).ssl_enabled


@pytest.mark.parametrize(
    ("service", "fragment"),
    [
        ({"tls_certfile": "{cert}"}, "tls_certfile and tls_keyfile must be set together"),
        ({"tls_keyfile": "{key}"}, "tls_certfile and tls_keyfile must be set together"),
        ({"tls_certfile": "{dir}/nope.pem", "tls_keyfile": "{key}"}, "nope.pem is not a file"),
        ({"tls_certfile": "{cert}", "tls_keyfile": "{dir}"}, "is not a file"),
        # Each file exists, but the key is not the certificate's.
        ({"tls_certfile": "{cert}", "tls_keyfile": "{other_key}"}, "cannot load tls_certfile"),
        ({"tls_certfile": "{key}", "tls_keyfile": "{key}"}, "cannot load tls_certfile"),
    ],
)
def test_bad_tls_settings_name_the_key(
    tmp_path: Path, service: dict[str, str], fragment: str
) -> None:
    tls = write_tls_files(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    paths = {
        "cert": tls.certfile,
        "key": tls.keyfile,
        "other_key": write_tls_files(other).keyfile,
        "dir": tmp_path,
    }
    with pytest.raises(SettingsError, match=r"broker\.yaml") as error:
        _tls_settings(tmp_path, **{k: v.format(**paths) for k, v in service.items()})
    assert "service" in str(error.value)
    assert fragment in str(error.value)
