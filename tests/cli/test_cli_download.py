"""``xtts model download`` against a local fake of the Hugging Face hub (no network here).

The fake answers the two requests ``huggingface_hub`` makes per file: ``HEAD`` for the metadata
(commit, ETag, size) and ``GET`` (with ``Range`` when resuming) for the bytes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_runner import assert_one_line_error, run, stderr

COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILES = ("config.json", "model.pth", "vocab.json", "speakers_xtts.pth")


class FakeHub(BaseHTTPRequestHandler):
    """Serves ``/coqui/XTTS-v2/resolve/main/<file>`` from ``source``; logs the requests."""

    source: Path
    requests: list[str]

    def _file(self) -> Path | None:
        prefix = "/coqui/XTTS-v2/resolve/main/"
        name = self.path.split("?")[0].removeprefix(prefix)
        if not self.path.startswith(prefix) or name not in FILES:
            self.send_error(404)
            return None
        return self.source / name

    def _headers(self, path: Path, body_len: int, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(path.read_bytes()).hexdigest()}"')
        self.send_header("Content-Length", str(body_len))
        self.end_headers()

    def do_HEAD(self) -> None:
        self.requests.append(f"HEAD {self.path}")
        path = self._file()
        if path is not None:
            self._headers(path, path.stat().st_size)

    def do_GET(self) -> None:
        self.requests.append(f"GET {self.path}")
        path = self._file()
        if path is None:
            return
        data = path.read_bytes()
        start = int(self.headers.get("Range", "bytes=0-")[6:].split("-")[0] or 0)
        self._headers(path, len(data) - start, 206 if start else 200)
        self.wfile.write(data[start:])

    def log_message(self, format: str, *args: object) -> None:
        del format, args  # keep the test output clean


@pytest.fixture
def hub(tiny: Path) -> Iterator[tuple[str, list[str]]]:
    requests: list[str] = []
    handler = type("Handler", (FakeHub,), {"source": tiny, "requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def test_download_from_the_hub_and_verify(
    tiny: Path, hub: tuple[str, list[str]], tmp_path: Path
) -> None:
    endpoint, requests = hub
    env = {"HF_ENDPOINT": endpoint, "XTTS_ACCEPT_CPML": "1"}
    result = run("model", "download", "XTTS-v2", cwd=tmp_path, env=env)
    assert result.returncode == 0, stderr(result)
    for name in FILES:
        assert (tmp_path / "XTTS-v2" / name).read_bytes() == (tiny / name).read_bytes()
        assert f"GET /coqui/XTTS-v2/resolve/main/{name}" in requests
    assert "checked XTTS-v2" in stderr(result)


def test_the_licence_must_be_accepted(tmp_path: Path) -> None:
    result = run("model", "download", "XTTS-v2", cwd=tmp_path)
    assert_one_line_error(result, 2, "Coqui Public Model License", "--accept-license")
    assert not (tmp_path / "XTTS-v2").exists()


def test_offline_is_one_line(tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": "http://127.0.0.1:9"}  # discard port: nothing listens
    result = run("model", "download", "XTTS-v2", "--accept-license", cwd=tmp_path, env=env)
    assert_one_line_error(result, 1, "cannot reach the Hugging Face hub", "127.0.0.1:9")
