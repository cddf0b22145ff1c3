"""Path traversal: hostile voice ids and upload names never reach the file system.

Voice ids (``..``, ``../../etc/passwd``, percent-encoded and overlong-UTF-8 dots and slashes,
absolute paths, NUL, backslashes, a 5,000-character id, fullwidth and zero-width lookalikes of a
real voice, shell syntax) go byte for byte into the websocket URL, the HTTP speech URL and the
voice GET/DELETE URLs, directly and through the broker; upload file names and the ``name``
field of ``POST /v1/voices/add`` carry the same. Every file under this module's directories
(the servers' working directory, their configs and logs, the voice library, the voice cache,
the model) is listed before and after: nothing may be deleted, and new or changed files may only
be in ``voices_dir``, ``voice_cache_dir`` or ``log_dir``. Each attempt gets a 4xx or a
documented close; an upload of real audio under a hostile name is stored under a fresh random
id, its name only a label.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from balancer_server import CLIP_VOICE
from hostile_frames import http_status, open_raw, text
from hostile_servers import (
    QUERY,
    ErrorRecords,
    Target,
    assert_healthy,
    brokered,
    snapshot,
    standalone,
)

from xtts_balancer.voices_api import ADDED_VOICE_SUFFIX

pytestmark = pytest.mark.timeout(300)

#: Voice ids as they appear in the URL path (some percent-encoded on purpose).
HOSTILE_IDS = (
    "..", "../..", "../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2e%2e", "%2Fetc%2Fpasswd", "/etc/passwd", f"{CLIP_VOICE}%00.wav", f"{CLIP_VOICE}\x00",
    "..\\..\\hostile-pwned", "..%5c..%5chostile-pwned", "%c0%ae%c0%ae%c0%afhostile-pwned",
    "a" * 5000, "\uff4e\uff41\uff52\uff52\uff41\uff54\uff4f\uff52", f"{CLIP_VOICE}%E2%80%8B",
    f"{CLIP_VOICE}.wav", f"{CLIP_VOICE}/../{CLIP_VOICE}", "~root", "$(touch%20hostile-pwned)",
    f"{CLIP_VOICE};touch%20hostile-pwned", "%252e%252e%252fhostile-pwned",
)  # fmt: skip
HOSTILE_NAMES = (
    "../../hostile-pwned.wav", "/tmp/hostile-pwned.wav", "..\\..\\hostile-pwned.wav",
    "hostile\x00pwned.wav", "x" * 300 + ".wav", "\u2025\u2215hostile-pwned.wav", ".wav", "",
)  # fmt: skip
ALLOWED_SECTIONS = ("voices", "cache", "logs")
#: A websocket to a voice that is no voice: refused at the upgrade (no route: 403/404; a NUL in
#: the request line: 400) or after the first message with ``voice_not_found`` and 1008.
WS_REFUSALS = frozenset({"1008 voice_not_found", "http 400", "http 403", "http 404"})


@dataclass
class Setup:
    balancer: Target
    broker: Target
    root: Path
    watched: tuple[Path, ...]


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, model_files: tuple[Path, Path]
) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("hostile-paths")
    model_dir, shared_voices = model_files
    for name in (*ALLOWED_SECTIONS, "cwd"):
        (root / name).mkdir()
    shutil.copy(shared_voices / f"{CLIP_VOICE}.wav", root / "voices")
    sections = {
        "model": {"voices_dir": str(root / "voices"), "voice_cache_dir": str(root / "cache")},
        "service": {"log_dir": str(root / "logs")},
    }
    files = (model_dir, root / "voices")
    with contextlib.ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.chdir(root / "cwd")  # the servers' working directory, watched like the rest
        balancer = stack.enter_context(standalone(root, files, **sections))
        broker, _ = stack.enter_context(brokered(root, files, **sections))
        yield Setup(balancer, broker, root, (root, model_dir, shared_voices))


@pytest.fixture
def watched(setup: Setup) -> Iterator[Setup]:
    """Fails the test if a file outside the allowed directories changed or any file vanished."""
    before = snapshot(*setup.watched)
    with ErrorRecords().installed() as errors:
        yield setup
        for target in (setup.balancer, setup.broker):
            assert_healthy(target, errors)
    after = snapshot(*setup.watched)
    allowed = tuple(setup.root / name for name in ALLOWED_SECTIONS)
    assert sorted(set(before) - set(after)) == []
    changed = [p for p in after if before.get(p) != after[p] and p.name != "server.log"]
    assert [p for p in changed if not any(p.is_relative_to(a) for a in allowed)] == []
    assert not list(Path("/tmp").glob("hostile-pwned*")) and not list(Path("/").glob("hostile*"))


def client_error(status: object) -> bool:
    return isinstance(status, int) and 400 <= status < 500


@pytest.mark.parametrize("via", ["balancer", "broker"])
def test_hostile_voice_ids_in_every_url(watched: Setup, via: str) -> None:
    target = watched.balancer if via == "balancer" else watched.broker
    headers = {"xi-api-key": target.key, "content-type": "application/json"}
    speech = json.dumps({"text": "Hello."}).encode()

    async def ws(voice: str) -> str:
        path = f"/v1/text-to-speech/{voice}/stream-input{QUERY}"
        raw = await open_raw(target.port, path, {"xi-api-key": target.key})
        if raw.outcome.status == 101:
            frames = (text({"text": " "}), text({"text": "Hello."}), text({"text": ""}))
            await asyncio.gather(raw.send(*frames), raw.read_until_closed(10))
        await raw.close()
        return raw.outcome.label

    async def attempts(voice: str) -> dict[str, object]:
        port = target.port
        return {
            "ws": await ws(voice),
            "tts": await http_status(port, "POST", f"/v1/text-to-speech/{voice}", headers, speech),
            "get": await http_status(port, "GET", f"/v1/voices/{voice}", headers),
            "delete": await http_status(port, "DELETE", f"/v1/voices/{voice}", headers),
        }

    for voice in HOSTILE_IDS:
        got = asyncio.run(attempts(voice))
        assert got["ws"] in WS_REFUSALS, (voice, got)
        for kind in ("tts", "get", "delete"):
            assert client_error(got[kind]), (voice, kind, got)


def wav_bytes() -> bytes:
    buffer = io.BytesIO()
    t = np.arange(22050) / 22050
    soundfile.write(
        buffer, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 22050, format="WAV"
    )
    return buffer.getvalue()


def test_hostile_upload_names_are_labels_not_paths(watched: Setup) -> None:
    target = watched.balancer
    headers = {"xi-api-key": target.key}
    audio = wav_bytes()
    library = watched.root / "voices"
    for i, name in enumerate(HOSTILE_NAMES):
        label = f"voice {i}: {name}"[:100]  # names are limited to 100 characters (422)
        response = httpx.post(
            target.http_url + "/v1/voices/add", headers=headers, timeout=15,
            data={"name": label, "description": name, "labels": json.dumps({"path": name})},
            files=[("files", (name, audio, "audio/wav"))],
        )  # fmt: skip
        if not name:  # a part without a file name is a form field, not a file: none uploaded
            assert response.status_code == 422, response.text
            continue
        assert response.status_code == 200, (name, response.text)
        voice_id = response.json()["voice_id"]
        assert re.fullmatch(r"[0-9a-f]{20}", voice_id), voice_id
        stored = {p.name for p in library.glob(f"{voice_id}*")}
        assert stored == {f"{voice_id}.wav", f"{voice_id}{ADDED_VOICE_SUFFIX}"}
        url = f"{target.http_url}/v1/voices/{voice_id}"
        assert httpx.get(url, headers=headers, timeout=10).json()["name"] == label
        assert httpx.delete(url, headers=headers, timeout=10).status_code == 200
        assert list(library.glob(f"{voice_id}*")) == []
