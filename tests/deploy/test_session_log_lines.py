"""One log line per finished session, at the broker and at the balancer it routed to.

A broker and a balancer (tone backend) as processes in broker mode, default log level, in each
``service.log_format``; through the broker: a stream-input websocket, a dozen HTTP speech
requests, and a websocket and an HTTP request for a voice that does not exist. Each session has
exactly one ``session finished`` line at each service, with the same session id, and its fields
say what happened; the client's API key appears nowhere in either log.
"""

from __future__ import annotations

import json
import re
import signal
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
from test_json_logs import free_port, json_lines  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from xtts_core.cluster import api_key_id, hash_api_key  # noqa: E402

BALANCER_ID = "gpu-a"
#: The fields of each service's line, whatever the format and the outcome.
BALANCER_FIELDS = {
    "session_id", "dialect", "voice", "balancer_id", "output_format", "characters",
    "first_audio_ms", "audio_s", "rtf", "error", "key_id",
}  # fmt: skip
BROKER_FIELDS = {
    "session_id", "dialect", "voice", "strategy", "balancer_id", "attempts", "error",
    "first_audio_ms", "bytes_out", "bytes_in", "key_id",
}  # fmt: skip
_JSON_KEYS = {"ts", "level", "logger", "pid", "msg"}
HTTP_REQUESTS = 12
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def text_fields(line: str) -> dict[str, Any]:
    """The ``key=value`` tail of a text line, typed as the JSON line would have it."""
    fields: dict[str, Any] = {}
    for key, raw in _FIELD.findall(line.partition("session finished")[2]):
        if raw == "-":
            fields[key] = None
        elif raw.startswith('"'):
            fields[key] = json.loads(raw)
        else:
            try:
                fields[key] = json.loads(raw)
            except ValueError:
                fields[key] = raw
    return fields


def session_lines(log: Path, logger: str, log_format: str) -> list[dict[str, Any]]:
    """The fields of every ``session finished`` line ``logger`` wrote to ``log``."""
    if log_format == "json":
        return [
            {key: value for key, value in line.items() if key not in _JSON_KEYS}
            for line in json_lines(log)
            if line["logger"] == logger and line["msg"] == "session finished"
        ]
    return [
        text_fields(line)
        for line in log.read_text().splitlines()
        if f" {logger}: session finished " in line
    ]


def start_broker(tmp_path: Path, port: int, log_format: str) -> subprocess.Popen[bytes]:
    config = tmp_path / "broker.yaml"
    config.write_text(yaml.safe_dump({
        "service": {"host": "127.0.0.1", "port": port, "graceful_timeout_s": 0.5,
                    "log_format": log_format, "websocket_ping_interval_s": None},
        "cluster": {"secret": SECRET, "heartbeat_interval_s": 0.5, "heartbeat_ttl_s": 2},
        "auth": {"api_key_hashes": [hash_api_key(CLIENT_KEY)]},
    }))  # fmt: skip
    with (tmp_path / "broker.log").open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "xtts_broker", "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def speak_http(url: str, headers: dict[str, str]) -> httpx.Response:
    """One HTTP speech request through the broker, again while the broker answers 429 (its view
    of the balancer's one slot lags a heartbeat behind)."""
    while True:
        answer = httpx.post(
            f"{url}/v1/text-to-speech/default/stream?output_format=mp3_44100_128",
            json={"text": "Hi there."}, headers=headers, timeout=30,
        )  # fmt: skip
        if answer.status_code != 429:
            return answer
        time.sleep(0.1)


def wait_routable(url: str, broker_log: Path) -> None:
    """Until the broker has a balancer to route to."""
    deadline = time.monotonic() + 30
    while not httpx.get(url + "/v1/models", headers={"xi-api-key": CLIENT_KEY}).is_success:
        assert time.monotonic() < deadline, broker_log.read_text()
        time.sleep(0.1)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_one_line_per_session_at_broker_and_balancer(tmp_path: Path, log_format: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    broker = start_broker(tmp_path, port, log_format)
    voices = tmp_path / "voices"
    voices.mkdir()
    config = base_config(tmp_path, voices)
    config["model"] = {"backend": "tone", "voices_dir": str(voices)}
    config["service"].update(standalone_mode=False, log_format=log_format)
    config["cluster"] = {
        "secret": SECRET, "broker_urls": [url], "retry_interval_s": 0.2, "balancer_id": BALANCER_ID,
    }  # fmt: skip
    (tmp_path / "balancer").mkdir()
    balancer = start_server(tmp_path / "balancer", config)
    headers = {"xi-api-key": CLIENT_KEY}
    ws_base = url.replace("http", "ws", 1) + "/v1/text-to-speech"
    try:
        balancer.wait_ready()
        wait_routable(url, tmp_path / "broker.log")
        stream = f"{ws_base}/default/stream-input?output_format=pcm_16000"
        with connect(stream, additional_headers=headers) as ws:
            reply = converse(ws, {"text": " "}, {"text": "Hello there. "}, {"text": ""})
        assert reply.close_code == 1000 and reply.audio
        for _ in range(HTTP_REQUESTS):
            answer = speak_http(url, headers)
            assert answer.status_code == 200 and answer.content
        with connect(f"{ws_base}/no-such-voice/stream-input", additional_headers=headers) as ws:
            bad = converse(ws, {"text": " "}, {"text": "Hello. "}, {"text": ""})
        assert bad.error is not None and bad.error["error"] == "voice_not_found"
        missing = httpx.post(
            f"{url}/v1/text-to-speech/no-such-voice", json={"text": "Hi."}, headers=headers
        )
        assert missing.status_code == 404
    finally:
        assert balancer.stop() == 0
        broker.send_signal(signal.SIGTERM)
        assert broker.wait(20) == 0

    broker_log = tmp_path / "broker.log"
    at_balancer = session_lines(balancer.log, "xtts_balancer.session", log_format)
    at_broker = session_lines(broker_log, "xtts_broker.session", log_format)
    busy = [line for line in at_broker if line["error"] == "no_capacity"]
    assert all(line["status"] == 429 and line["attempts"] == 0 for line in busy)
    at_broker = [line for line in at_broker if line not in busy]
    assert len(at_balancer) == len(at_broker) == HTTP_REQUESTS + 3, balancer.logs()
    by_id = {line["session_id"]: line for line in at_balancer}
    assert len(by_id) == len(at_balancer)
    assert {line["session_id"] for line in at_broker} == set(by_id)
    key_id = api_key_id(CLIENT_KEY)
    for log in (balancer.log, broker_log):
        assert CLIENT_KEY not in log.read_text(), log.name
        assert "HTTP Request:" not in log.read_text(), log.name  # httpx's heartbeat lines

    for routed in at_broker:
        served = by_id[routed["session_id"]]
        outcome = {"status"} if served["dialect"] == "http" else {"close_code"}
        assert served.keys() == BALANCER_FIELDS | outcome
        assert routed.keys() == BROKER_FIELDS | outcome
        assert (served["dialect"], served["voice"]) == (routed["dialect"], routed["voice"])
        assert served["balancer_id"] == routed["balancer_id"] == BALANCER_ID
        assert routed["strategy"] == "deep" and routed["attempts"] == 1
        assert routed["key_id"] == key_id and routed["bytes_in"] > 0
        ok = served["voice"] == "default"
        assert served["error"] == routed["error"] == (None if ok else "voice_not_found")
        if served["dialect"] == "http":
            assert served["status"] == routed["status"] == (200 if ok else 404)
            assert served["key_id"] is None  # the broker keeps the key; its line has the id
        else:
            assert served["dialect"] == routed["dialect"] == "stream-input"
            assert served["close_code"] == routed["close_code"] == (1000 if ok else 1008)
            assert served["key_id"] == key_id  # the key the broker checked and passed on
        if ok:
            assert served["output_format"] in ("pcm_16000", "mp3_44100_128")
            assert served["characters"] >= len("Hi there.")
            assert served["audio_s"] > 0 and served["rtf"] > 0
            assert served["first_audio_ms"] > 0 and routed["first_audio_ms"] > 0
            assert routed["bytes_out"] > 0
        else:
            assert served["audio_s"] == 0 and served["first_audio_ms"] is None
            assert routed["first_audio_ms"] is None
    ws_line = next(line for line in at_balancer if line["output_format"] == "pcm_16000")
    assert ws_line["output_format"] == "pcm_16000" and ws_line["characters"] == len("Hello there.")
