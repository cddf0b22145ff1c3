"""``service.log_format: json``: a broker and a balancer (and its worker) as processes, one
session through the broker, and every line each process wrote is one JSON object; Hypercorn's
lines among them, once each."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / n) for n in ("balancer", "broker")]
pytest.importorskip("xtts_balancer", reason="needs xtts-balancer for a real balancer")

from balancer_server import base_config, converse, start_server  # noqa: E402
from broker_servers import CLIENT_KEY, SECRET  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from xtts_core.cluster import hash_api_key  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of ``log`` as JSON (a line that is not fails the test, naming it)."""
    lines = []
    for line in log.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{log.name}: not a JSON line: {line!r}")
    return lines


@pytest.mark.timeout(120)
def test_broker_balancer_and_worker_write_json_lines(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    broker_file, broker_log = tmp_path / "broker.yaml", tmp_path / "broker.log"
    broker_file.write_text(yaml.safe_dump({
        "service": {"host": "127.0.0.1", "port": port, "graceful_timeout_s": 0.5,
                    "log_format": "json", "websocket_ping_interval_s": None},
        "cluster": {"secret": SECRET, "heartbeat_interval_s": 0.5, "heartbeat_ttl_s": 2},
        "auth": {"api_key_hashes": [hash_api_key(CLIENT_KEY)]},
    }))  # fmt: skip
    with broker_log.open("wb") as out:
        broker = subprocess.Popen(
            [sys.executable, "-m", "xtts_broker", "--config", str(broker_file)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    voices = tmp_path / "voices"
    voices.mkdir()
    config = base_config(tmp_path, voices)
    config["model"] = {"backend": "tone", "voices_dir": str(voices)}
    config["service"].update(standalone_mode=False, log_format="json")
    config["cluster"] = {"secret": SECRET, "broker_urls": [url], "retry_interval_s": 0.2}
    (tmp_path / "balancer").mkdir()
    balancer = start_server(tmp_path / "balancer", config)
    try:
        balancer.wait_ready()
        deadline = time.monotonic() + 30
        while httpx.get(url + "/ready").status_code != 200:
            assert time.monotonic() < deadline, broker_log.read_text()
            time.sleep(0.1)
        stream = url.replace("http", "ws", 1) + "/v1/text-to-speech/default/stream-input"
        with connect(stream, additional_headers={"xi-api-key": CLIENT_KEY}) as ws:
            reply = converse(ws, {"text": " "}, {"text": "Hello. "}, {"text": ""})
        assert reply.close_code == 1000 and reply.audio
    finally:
        assert balancer.stop() == 0
        broker.send_signal(signal.SIGTERM)
        assert broker.wait(20) == 0

    for log in (broker_log, balancer.log):
        lines = json_lines(log)
        assert all({"ts", "level", "logger", "msg"} <= line.keys() for line in lines)
        running = [line for line in lines if line["msg"].startswith("Running on")]
        assert len(running) == 1 and running[0]["logger"] == "hypercorn.error", log.name
    balancer_lines = json_lines(balancer.log)
    assert any(line.get("worker") == "worker-0" for line in balancer_lines)
    assert any("registered" in line["msg"] for line in balancer_lines)
