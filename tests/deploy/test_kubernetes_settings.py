"""The manifests agree with the services: each ConfigMap's settings, with the environment the
pod gives them (Secrets stood in for), load into the real settings model; every ``XTTS_*``
variable names a real key; and the numbers that must match do (ports, grace periods, the
startup probe against the warm-up timeout, the brokers' peer Service against the balancers'
``cluster.broker_urls``, the autoscaler's target against the slots)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes_files import DEPLOY, base_objects, settings_file
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "broker"))
from broker_servers import write_tls_files

from xtts_broker.settings import BrokerSettings
from xtts_core.cluster import hash_api_key
from xtts_core.settings import load_settings

balancer_settings = pytest.importorskip("xtts_balancer.settings")
BalancerSettings = balancer_settings.BalancerSettings

POD_NAME = "xtts-balancer-0"
#: What each Secret key stands for in a test.
SECRETS = {
    "secret": "a-cluster-secret-of-32-characters",
    "api_key_hashes": json.dumps([hash_api_key("a-client-key")]),
    "key_hashes": json.dumps([hash_api_key("an-admin-key")]),
}


def container(kind: str, name: str) -> dict[str, Any]:
    spec = base_objects()[(kind, name)]["spec"]["template"]["spec"]
    found: dict[str, Any] = spec["containers"][0]
    return found


def pod(kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = base_objects()[(kind, name)]["spec"]["template"]["spec"]
    return spec


def environment(spec: dict[str, Any]) -> dict[str, str]:
    """The container's variables as the kubelet sets them: ``$(NAME)`` of an earlier one
    expanded, a Secret's value as :data:`SECRETS` has it."""
    values: dict[str, str] = {}
    for variable in spec["env"]:
        if "value" in variable:
            values[variable["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: values[m.group(1)], variable["value"]
            )
        elif "secretKeyRef" in variable["valueFrom"]:
            values[variable["name"]] = SECRETS[variable["valueFrom"]["secretKeyRef"]["key"]]
        else:
            assert variable["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            values[variable["name"]] = POD_NAME
    return values


def names_a_key(model: type[BaseModel], path: str) -> bool:
    """Whether ``SECTION__KEY`` (an env name without the prefix) is a field of ``model``."""
    section, _, key = path.lower().partition("__")
    field = model.model_fields.get(section)
    if field is None:
        return False
    inner = field.annotation
    return key == "" or (isinstance(inner, type) and key in inner.model_fields)


def mount(spec: dict[str, Any], volume: str) -> str:
    path: str = next(m["mountPath"] for m in spec["volumeMounts"] if m["name"] == volume)
    return path


def port(spec: dict[str, Any], name: str) -> int:
    number: int = next(p["containerPort"] for p in spec["ports"] if p["name"] == name)
    return number


def load(
    cls: type[BaseModel], config: dict[str, Any], env: dict[str, str], file_env: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> Any:  # fmt: skip
    """``cls`` from ``config`` written where ``env[file_env]`` would find it, plus ``env``,
    each of whose variables with the settings' prefix names a key of ``cls``."""
    prefix = str(cls.model_config.get("env_prefix"))
    unknown = [
        name for name in env
        if name.startswith(prefix) and name != file_env
        and not names_a_key(cls, name.removeprefix(prefix))
    ]  # fmt: skip
    assert not unknown, f"{unknown} name no key of {cls.__name__}"
    path = tmp_path / Path(env[file_env]).name
    path.write_text(yaml.safe_dump(config))
    for name, value in env.items():
        monkeypatch.setenv(name, str(path) if name == file_env else value)
    return load_settings(cls, str(path))  # type: ignore[type-var]


def test_the_broker_manifest_matches_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = container("Deployment", "xtts-broker")
    env = environment(spec)
    config = settings_file("broker")
    service = config["service"]
    assert Path(env["XTTS_BROKER_CONFIG_FILE"]).parent == Path(mount(spec, "config"))
    for key in ("tls_certfile", "tls_keyfile"):
        assert Path(service[key]).parent == Path(mount(spec, "tls"))  # the Secret's files
    tls = write_tls_files(tmp_path)
    service["tls_certfile"], service["tls_keyfile"] = str(tls.certfile), str(tls.keyfile)
    settings = load(BrokerSettings, config, env, "XTTS_BROKER_CONFIG_FILE", tmp_path, monkeypatch)
    assert settings.cluster.secret.get_secret_value() == SECRETS["secret"]
    assert settings.auth.api_key_hashes == json.loads(SECRETS["api_key_hashes"])
    assert port(spec, "https") == settings.service.port
    grace = pod("Deployment", "xtts-broker")["terminationGracePeriodSeconds"]
    # Up to 35 s more for TLS closes a client never answers (configs/broker.example.yaml).
    assert grace >= settings.service.graceful_timeout_s + 35
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert spec[probe]["httpGet"]["scheme"] == "HTTPS"  # the broker serves TLS only


def test_the_balancer_manifest_matches_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = container("StatefulSet", "xtts-balancer")
    env = environment(spec)
    config = settings_file("balancer")
    assert Path(env["XTTS_CONFIG_FILE"]).parent == Path(mount(spec, "config"))
    assert config["model"]["directory"] == mount(spec, "model")
    assert Path(config["model"]["voice_cache_dir"]).is_relative_to(mount(spec, "cache"))
    assert config["model"]["voices_dir"] == mount(spec, "library")  # writable: voices are added
    model, library = tmp_path / "model", tmp_path / "library"
    model.mkdir()
    library.mkdir()
    config["model"]["directory"], config["model"]["voices_dir"] = str(model), str(library)
    settings = load(BalancerSettings, config, env, "XTTS_CONFIG_FILE", tmp_path, monkeypatch)
    assert settings.cluster.balancer_id == POD_NAME
    assert settings.admin.key_hashes == json.loads(SECRETS["key_hashes"])

    # The brokers reach the pod at its advertised name: <pod>.<governing Service>:service.port.
    statefulset = base_objects()[("StatefulSet", "xtts-balancer")]["spec"]
    advertised = httpx.URL(settings.cluster.advertised_url)
    assert advertised.host.split(".") == [POD_NAME, statefulset["serviceName"]]
    assert advertised.port == settings.service.port == port(spec, "http")
    assert settings.admin.port == port(spec, "admin")
    headless = base_objects()[("Service", statefulset["serviceName"])]["spec"]
    assert headless["clusterIP"] == "None"

    # Every broker pod, ready or not, behind the name the balancers resolve.
    (peers_url,) = settings.broker_urls
    peers = httpx.URL(peers_url)
    assert settings.cluster.resolve_brokers
    peer_service = base_objects()[("Service", peers.host)]["spec"]
    assert peer_service["clusterIP"] == "None" and peer_service["publishNotReadyAddresses"]
    broker = settings_file("broker")["service"]
    assert peers.port == broker["port"] and (peers.scheme == "https") == ("tls_certfile" in broker)
    assert Path(env["SSL_CERT_FILE"]).parent == Path(mount(spec, "broker-ca"))

    grace = pod("StatefulSet", "xtts-balancer")["terminationGracePeriodSeconds"]
    assert grace >= settings.service.graceful_timeout_s + settings.workers.stop_timeout_s
    startup = spec["startupProbe"]
    assert (
        startup["periodSeconds"] * startup["failureThreshold"] > settings.workers.startup_timeout_s
    )
    assert spec["resources"]["limits"]["nvidia.com/gpu"] == 1

    scaled = yaml.safe_load((DEPLOY / "components/autoscaling/scaled-object.yaml").read_text())
    slots = settings.workers.slots_per_worker * settings.service.instances
    for trigger in scaled["spec"]["triggers"]:
        assert 0 < float(trigger["metadata"]["threshold"]) <= slots
