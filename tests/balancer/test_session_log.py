"""A standalone balancer's ``session finished`` lines (text format, the default): one per
multi-stream-input connection with its contexts summed, one per refused HTTP request; an id of
its own for each session, the key named by its id and never written."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx
from balancer_server import CLIP_VOICE, KEY, Server, read_until_closed
from test_multi_context import OPEN, multi, send, until_final

from xtts_core.cluster import api_key_id

_LINE = re.compile(r" xtts_balancer\.session: session finished (.*)$")


def lines_after(log: Path, offset: int, timeout: float = 5.0) -> list[dict[str, str]]:
    """The ``key=value`` fields of the session lines written to ``log`` after ``offset``
    (waiting until at least one is there)."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace")[offset:]
        found = [dict(re.findall(r"(\w+)=(\S+)", m.group(1))) for m in _LINE.finditer(text)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_one_line_per_multi_stream_connection_and_refused_request(server: Server) -> None:
    offset = len(server.log.read_text(errors="replace"))
    with multi(server) as ws:
        send(
            ws,
            {**OPEN, "context_id": "a"},
            {"text": "Hello there. ", "context_id": "a", "flush": True},
            {"text": "Bye. ", "context_id": "b", "flush": True},
        )
        send(
            ws,
            {"context_id": "a", "close_context": True},
            {"context_id": "b", "close_context": True},
        )
        until_final(ws, "a", "b")
        send(ws, {"close_socket": True})
        assert read_until_closed(ws).close_code == 1000
    (line,) = lines_after(server.log, offset)
    assert re.fullmatch(r"[0-9a-f]{16}", line["session_id"])
    assert line["dialect"] == "multi-stream-input" and line["voice"] == CLIP_VOICE
    assert line["output_format"] == "pcm_16000" and line["close_code"] == "1000"
    assert int(line["characters"]) == len("Hello there.") + len("Bye.")
    assert float(line["audio_s"]) > 0 and line["error"] == "-"
    assert line["key_id"] == api_key_id(KEY)
    assert line["balancer_id"] == f"{socket.gethostname()}:{server.port}"

    offset = len(server.log.read_text(errors="replace"))
    answer = httpx.post(
        f"{server.http_url}/v1/text-to-speech/{CLIP_VOICE}", json={"text": "Hi."},
        headers={"xi-api-key": "not-" + KEY},
    )  # fmt: skip
    assert answer.status_code == 401
    (refused,) = lines_after(server.log, offset)
    assert refused["status"] == "401" and refused["error"] == "invalid_api_key"
    assert refused["key_id"] == "-" and refused["session_id"] != line["session_id"]
    assert KEY not in server.log.read_text(errors="replace")
