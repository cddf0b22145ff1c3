"""Every metric the dashboard and the autoscaler query is one a running broker and balancer
really export: a real broker (in a thread) and a real balancer (tone backend, subprocess
workers) registered with it, one session through the broker, then both ``/metrics`` read and
parsed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes_files import metric_names, queries
from prometheus_client.parser import text_string_to_metric_families

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / n) for n in ("balancer", "broker")]
pytest.importorskip("xtts_balancer", reason="needs xtts-balancer for a real balancer")

from balancer_server import Server, base_config, converse, start_server  # noqa: E402
from broker_servers import CLIENT_KEY, SECRET, BrokerThread, eventually  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

SLOTS = 3

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported(text: str) -> dict[str, list[float]]:
    """Every series name a scrape of ``text`` can hold (even with no sample yet, as for a
    labelled counter before its first increment), with the sample values it holds."""
    names: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.setdefault(family.name + suffix, [])
        for sample in family.samples:
            names.setdefault(sample.name, []).append(sample.value)
    return names


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerThread, Server]]:
    tmp = tmp_path_factory.mktemp("k8s-metrics")
    voices = tmp / "voices"
    voices.mkdir()
    broker = BrokerThread(cluster={"heartbeat_interval_s": 0.5, "heartbeat_ttl_s": 2.0})
    broker.start("deep")
    config = base_config(tmp, voices)
    config["model"] = {"backend": "tone", "voices_dir": str(voices)}
    config["queue"] = {"slot_lease": "session"}  # an open socket holds its slot
    config["workers"]["slots_per_worker"] = SLOTS
    config["service"]["standalone_mode"] = False
    config["cluster"] = {
        "secret": SECRET, "balancer_id": "b0", "broker_urls": [broker.url], "retry_interval_s": 0.2,
    }  # fmt: skip
    directory = tmp / "balancer"
    directory.mkdir()
    server = start_server(directory, config)
    try:
        server.wait_ready()
        eventually(lambda: httpx.get(broker.url + "/ready").status_code == 200, "b0 registered", 30)
        yield broker, server
    finally:
        server.stop()
        broker.stop()


def test_the_dashboard_and_the_autoscaler_query_only_exported_metrics(
    fleet: tuple[BrokerThread, Server],
) -> None:
    broker, balancer = fleet
    url = broker.url.replace("http", "ws", 1) + "/v1/text-to-speech/default/stream-input"
    with connect(url, additional_headers={"xi-api-key": CLIENT_KEY}) as ws:
        reply = converse(ws, {"text": " "}, {"text": "Hello there. "}, {"text": ""})
    assert reply.close_code == 1000 and reply.audio, reply
    names = exported(httpx.get(broker.url + "/metrics").text)
    names.update(exported(balancer.get("/metrics").text))
    used = {where: metric_names(query) for where, query in queries().items()}
    assert all(used.values()), {where: q for where, q in queries().items() if not used[where]}
    missing = {where: sorted(n - names.keys()) for where, n in used.items() if n - names.keys()}
    assert not missing, missing


def test_the_autoscaler_signal_follows_the_slots(fleet: tuple[BrokerThread, Server]) -> None:
    """``xtts_slots_free`` is read at each scrape: one slot fewer while a stream holds it."""
    broker, balancer = fleet

    def value(source: str, name: str) -> list[float]:
        return exported(httpx.get(source + "/metrics").text)[name]

    eventually(lambda: value(balancer.http_url, "xtts_slots_free") == [SLOTS], "all free")
    assert value(balancer.http_url, "xtts_slots") == [SLOTS]
    eventually(lambda: value(broker.url, "xtts_broker_free_slots") == [SLOTS], "broker view")
    url = broker.url.replace("http", "ws", 1) + "/v1/text-to-speech/default/stream-input"
    with connect(url, additional_headers={"xi-api-key": CLIENT_KEY}) as ws:
        ws.send('{"text": " "}')
        eventually(lambda: value(balancer.http_url, "xtts_slots_free") == [SLOTS - 1], "held")
        assert value(broker.url, "xtts_broker_free_slots") == [SLOTS - 1]  # its reservation
        reply = converse(ws, {"text": "Hi. "}, {"text": ""})
    assert reply.close_code == 1000
    eventually(lambda: value(balancer.http_url, "xtts_slots_free") == [SLOTS], "released")
