"""docker/compose.yml (a broker and a balancer in broker mode) agrees with the settings it mounts.

Docker is not needed: the compose file is read as YAML, its ``${VAR:?message}`` references are
filled in as Compose does, and each service's settings are loaded exactly as its container
would load them (the mounted YAML plus the environment compose sets), so a wrong port, a missing
secret or a renamed key fails here rather than in someone's ``docker compose up``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from xtts_broker.settings import BrokerSettings, load_broker_settings
from xtts_core.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "compose-secret-0123456789"


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}`` and ``${VAR:?message}`` (the forms compose.yml uses)."""
    return re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", lambda match: env[match.group(1)], value)


def service(name: str, env: dict[str, str]) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())[
        "services"
    ]
    spec: dict[str, Any] = services[name]
    spec["environment"] = {k: interpolate(str(v), env) for k, v in spec["environment"].items()}
    return spec


def mounted_config(spec: dict[str, Any], target: str) -> Path:
    """The host file a service mounts at ``target`` (paths are relative to docker/)."""
    volumes: list[str] = spec["volumes"]
    for volume in volumes:
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target:
            return (ROOT / "docker" / source).resolve()
    raise AssertionError(f"nothing is mounted at {target}")


def dockerfile(name: str) -> str:
    return (ROOT / "docker" / f"{name}.Dockerfile").read_text()


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], BrokerSettings]:
    spec = service("broker", {"XTTS_CLUSTER_SECRET": SECRET})
    for key, value in spec["environment"].items():
        monkeypatch.setenv(key, value)
    config_file = re.search(r"XTTS_BROKER_CONFIG_FILE=(\S+)", dockerfile("broker"))
    assert config_file is not None
    return spec, load_broker_settings(str(mounted_config(spec, config_file.group(1))))


def test_the_broker_listens_where_compose_publishes_it(
    broker: tuple[dict[str, Any], BrokerSettings],
) -> None:
    spec, settings = broker
    assert settings.cluster.secret.get_secret_value() == SECRET
    published = {int(port.split(":")[-1]) for port in spec["ports"]}
    assert published == {settings.service.port}
    assert f"EXPOSE {settings.service.port}" in dockerfile("broker")
    assert not settings.service.on_loopback  # so it refuses balancers advertising loopback


def test_the_balancer_registers_with_that_broker_and_is_reachable_where_it_says(
    broker: tuple[dict[str, Any], BrokerSettings],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from xtts_balancer.settings import BalancerSettings

    _, broker_settings = broker
    spec = service("balancer", {"XTTS_CLUSTER_SECRET": SECRET, "XTTS_MODEL_DIR": str(tmp_path)})
    for key, value in spec["environment"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XTTS_BALANCER_MODEL__DIRECTORY", str(tmp_path))  # /model in the image
    config_file = re.search(r"XTTS_CONFIG_FILE=(\S+)", dockerfile("balancer"))
    assert config_file is not None
    settings = load_settings(BalancerSettings, mounted_config(spec, config_file.group(1)))

    assert settings.service.standalone_mode is False
    assert settings.service.broker_host == "broker" and "broker" in spec["depends_on"]
    assert settings.service.broker_port == broker_settings.service.port
    assert settings.cluster.secret is not None
    assert settings.cluster.secret.get_secret_value() == SECRET
    assert settings.cluster.advertised_url == f"http://balancer:{settings.service.port}"
    assert f"EXPOSE {settings.service.port}" in dockerfile("balancer")


def test_the_shared_secret_is_required_and_never_written_in_the_file() -> None:
    services = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())["services"]
    secrets = [
        services["broker"]["environment"]["XTTS_BROKER_CLUSTER__SECRET"],
        services["balancer"]["environment"]["XTTS_BALANCER_CLUSTER__SECRET"],
    ]
    # ${VAR:?message}: compose stops with the message when the variable is unset.
    assert all(value.startswith("${XTTS_CLUSTER_SECRET:?") for value in secrets), secrets
