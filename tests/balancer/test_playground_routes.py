"""The playground's routes on a real balancer (tone backend: no model, fast start).

What a browser gets before any script runs: ``/`` and ``/playground`` lead to the page, its
files come with their media types and a Content-Security-Policy that allows this origin only,
they need no key even where auth is on (the page asks for one and sends it itself), the page
learns from ``config.json`` whether to ask, only the page's own files are served, and
``playground.enabled: false`` takes every one of these routes away. The page in a real browser
is tests/browser/test_playground.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from balancer_server import CLIP_VOICE, Server, base_config, start_server

from xtts_balancer.playground import FILES

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("playground-voices")
    soundfile.write(folder / f"{CLIP_VOICE}.wav", np.zeros(2205, np.float32), 22050)
    return folder


def tone_server(tmp: Path, voices: Path, **sections: dict[str, object]) -> Server:
    config = base_config(Path(), voices, **sections)
    config["model"] = {"backend": "tone", "voices_dir": str(voices)}
    server = start_server(tmp, config)
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def server(voices: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Auth on (base_config's keys), playground on by default."""
    srv = tone_server(tmp_path_factory.mktemp("playground"), voices)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.parametrize("path", ["/", "/playground"])
def test_the_root_and_the_bare_path_lead_to_the_page(server: Server, path: str) -> None:
    response = httpx.get(server.http_url + path, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/playground/"


@pytest.mark.parametrize("name", ["", *FILES])
def test_every_file_is_served_without_a_key_under_a_same_origin_policy(
    server: Server, name: str
) -> None:
    response = server.get(f"/playground/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == FILES[name or "index.html"]
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_page_loads_nothing_from_elsewhere(server: Server) -> None:
    page = server.get("/playground/").text
    references = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sorted(references) == sorted(["favicon.svg", "playground.css", "playground.js"])
    script = server.get("/playground/playground.js").text
    assert "http://" not in script and "https://" not in script
    assert 'OUTPUT_FORMAT = "pcm_24000"' in script  # named, whatever the server's default


def test_the_page_learns_that_this_server_needs_a_key(server: Server) -> None:
    response = server.get("/playground/config.json")
    assert response.json() == {"auth_required": True}
    assert response.headers["cache-control"] == "no-store"
    assert server.get("/v1/voices").status_code == 401  # what the page's requests need a key for


@pytest.mark.parametrize("name", ["missing.js", "..%2Fplayground.py", "static", "%2e%2e"])
def test_only_the_pages_own_files_are_served(server: Server, name: str) -> None:
    response = server.get(f"/playground/{name}")
    assert response.status_code == 404
    assert "import" not in response.text  # never a module's source


def test_without_auth_the_page_is_told_no_key_is_needed(voices: Path, tmp_path: Path) -> None:
    srv = tone_server(tmp_path, voices, auth={"enabled": False})
    try:
        assert srv.get("/playground/config.json").json() == {"auth_required": False}
    finally:
        srv.stop()


def test_disabled_the_playground_is_not_served(voices: Path, tmp_path: Path) -> None:
    srv = tone_server(tmp_path, voices, playground={"enabled": False})
    try:
        for path in ("/", "/playground", "/playground/", "/playground/config.json"):
            assert httpx.get(srv.http_url + path).status_code == 404, path
        assert srv.get("/health").status_code == 200
    finally:
        srv.stop()
