"""Backends: the tone backend end to end, a third-party backend by import path, selection errors;
and, on the fast tone backend, HTTP speech as a session (metrics, drain, cancel on leaving).

Every behaviour here is also covered with the tiny XTTS checkpoint by the other modules; the tone
backend (a fixed duration per character) makes lengths exact and timings deterministic.
"""

from __future__ import annotations

import dataclasses
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
import third_party_backend
from balancer_server import CLIP_VOICE, KEY, Server, base_config, converse, start_server

from xtts_balancer.backends import backend_class
from xtts_balancer.backends.base import DEFAULT_VOICE_ID, JobRejectedError
from xtts_balancer.backends.tone import SAMPLE_RATE, ToneBackend, tone_frequency
from xtts_balancer.settings import BalancerSettings
from xtts_balancer.supervisor import Supervisor
from xtts_balancer.worker.ipc import Job, Ready, WorkerConfig
from xtts_core.errors import SettingsError
from xtts_core.settings import load_settings

MS_PER_CHAR = 20
SAMPLES_PER_CHAR = SAMPLE_RATE * MS_PER_CHAR // 1000
#: Characters the tone backend speaks in about 8 s (realtime_factor 1): still running when a
#: test acts on it.
LONG_TEXT = "Speak slowly now. " * 22
BOS = {"text": " "}
EOS = {"text": ""}


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A voices_dir with one clip (the tone backend serves its stem; it never reads the audio)."""
    folder = tmp_path_factory.mktemp("tone-voices")
    soundfile.write(folder / f"{CLIP_VOICE}.wav", np.zeros(2205, np.float32), 22050)
    return folder


def tone_config(voices: Path, **model: Any) -> dict[str, Any]:
    """``base_config`` on the tone backend: no checkpoint, two slots, ``MS_PER_CHAR`` per char
    "computed" in real time."""
    config = base_config(Path(), voices)
    config["model"] = {
        "backend": "tone", "voices_dir": str(voices),
        "backend_options": {"ms_per_char": MS_PER_CHAR, "realtime_factor": 1.0}, **model,
    }  # fmt: skip
    config["workers"]["slots_per_worker"] = 2
    return config


@pytest.fixture(scope="module")
def tone_server(voices: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("tone"), tone_config(voices))
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def post(server: Server, text: str, path: str = "", **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{server.http_url}/v1/text-to-speech/{CLIP_VOICE}{path}",
        params={"output_format": "pcm_24000"}, json={"text": text}, headers={"xi-api-key": KEY},
        **{"timeout": 30, **kwargs},
    )  # fmt: skip


def metric(server: Server, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", server.get("/metrics").text, re.MULTILINE)
    assert match is not None, name
    return float(match.group(1))


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# --- the tone backend -----------------------------------------------------------------------------


def test_tone_stream_input_gives_one_tone_per_character(tone_server: Server) -> None:
    text = "Hello there world."
    with tone_server.connect(query="output_format=pcm_24000") as ws:
        reply = converse(ws, BOS, {"text": text}, EOS)
    assert reply.close_code == 1000 and reply.messages[-1]["isFinal"] is True
    pcm = np.frombuffer(reply.audio_bytes, "<i2").astype(np.float64) / 32767
    assert pcm.size == len(text) * SAMPLES_PER_CHAR
    chars = [c for m in reply.audio if m["alignment"] for c in m["alignment"]["chars"]]
    assert "".join(chars) == text + " "
    for index, char in enumerate(text):  # each character's own pitch, sample for sample
        t = np.arange(SAMPLES_PER_CHAR) / SAMPLE_RATE
        expected = 0.2 * np.sin(2 * np.pi * tone_frequency(char) * t)
        got = pcm[index * SAMPLES_PER_CHAR : (index + 1) * SAMPLES_PER_CHAR]
        assert np.abs(got - expected).max() < 1e-3, char
    assert "tone backend ready" in tone_server.logs()


def test_tone_backend_unknown_voice_cancel_and_options(voices: Path, tmp_path: Path) -> None:
    config = WorkerConfig(
        "w", None, None, "fp32", voices, None, tmp_path, "en", 1, None, "Hi.", 20, "tone",
        {"ms_per_char": 10, "realtime_factor": 1.0},
    )  # fmt: skip
    backend = backend_class("tone").load(config)
    assert isinstance(backend, ToneBackend)
    assert backend.voices() == (DEFAULT_VOICE_ID, CLIP_VOICE)
    job = Job(1, "abcdefghij" * 10, "en", DEFAULT_VOICE_ID, 2.0, None, None, 4, 8, False)
    synthesis = backend.submit(job)
    chunks = iter(synthesis)
    assert next(chunks).size == SAMPLE_RATE * 10 // 2000  # speed 2: half the duration
    synthesis.cancel()
    assert list(chunks) == [] and synthesis.codes == 1
    with pytest.raises(JobRejectedError) as info:
        backend.submit(Job(2, "hi", "en", "nobody", 1.0, None, None, 4, 8, False))
    assert info.value.error == "voice_not_found"
    with pytest.raises(ValueError, match="ms_per_char"):
        ToneBackend.load(dataclasses.replace(config, backend_options={"ms_per_char": 0}))


# --- selection ------------------------------------------------------------------------------------


def test_third_party_backend_by_import_path_serves_a_session(
    voices: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(third_party_backend.__file__).parent))
    config = tone_config(voices, backend="third_party_backend:ConstantBackend", backend_options={})
    srv = start_server(tmp_path, config)
    try:
        srv.wait_ready()
        with srv.connect(query="output_format=pcm_16000") as ws:
            reply = converse(ws, BOS, {"text": "Four"}, EOS)
        assert reply.close_code == 1000, srv.logs()
        pcm = np.frombuffer(reply.audio_bytes, "<i2")
        assert pcm.size == 4 * third_party_backend.SAMPLES_PER_CHAR
        assert np.all(pcm == round(third_party_backend.LEVEL * 32767))
        assert "constant backend ready" in srv.logs()
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("no_such_module_here:Backend", "cannot import 'no_such_module_here'"),
        ("third_party_backend:Missing", "third_party_backend.Missing is not a Backend subclass"),
        ("xtts_balancer.settings:BalancerSettings", "is not a Backend subclass"),
        ("not an import path", "neither a built-in name"),
    ],
)
def test_bad_backend_is_a_settings_error_naming_it(
    tmp_path: Path, backend: str, message: str
) -> None:
    config = tmp_path / "b.yaml"
    config.write_text(f"model: {{backend: '{backend}'}}\nauth: {{enabled: false}}\n")
    with pytest.raises(SettingsError) as info:
        load_settings(BalancerSettings, config)
    text = str(info.value)
    assert str(config) in text and "model.backend" in text and repr(backend) in text, text
    assert message in text


def test_xtts_backend_needs_a_directory_and_the_tone_backend_does_not(tmp_path: Path) -> None:
    config = tmp_path / "b.yaml"
    config.write_text("model: {language: en}\nauth: {enabled: false}\n")
    with pytest.raises(SettingsError, match=r"the xtts backend needs model\.directory"):
        load_settings(BalancerSettings, config)
    config.write_text("model: {backend: tone}\nauth: {enabled: false}\n")
    assert load_settings(BalancerSettings, config).model.directory is None


# --- HTTP speech as a session ---------------------------------------------------------------------


def test_http_speech_counts_in_session_metrics(tone_server: Server) -> None:
    names = ("xtts_sessions_total", "xtts_time_to_first_audio_seconds_count",
             "xtts_real_time_factor_count")  # fmt: skip
    before = [metric(tone_server, name) for name in names]
    answer = post(tone_server, "One sentence. And another one.")
    assert answer.status_code == 200
    assert len(answer.content) == 2 * SAMPLES_PER_CHAR * len("One sentence.And another one.")
    stream = post(tone_server, "Streamed.", "/stream")
    assert stream.status_code == 200
    after = [metric(tone_server, name) for name in names]
    assert [b - a for a, b in zip(before, after, strict=True)] == [
        2,
        3,
        3,
    ]  # 2 requests, 3 segments
    assert metric(tone_server, "xtts_sessions_active") == 0


def test_coqui_routes_answer_400_on_a_backend_without_latents(tone_server: Server) -> None:
    headers = {"xi-api-key": KEY}
    speakers = httpx.get(f"{tone_server.http_url}/studio_speakers", headers=headers, timeout=30)
    body = {"text": "Hi.", "language": "en", "speaker_embedding": [0], "gpt_cond_latent": [[0]]}
    speech = httpx.post(f"{tone_server.http_url}/tts_stream", json=body, headers=headers)
    assert speakers.status_code == speech.status_code == 400
    assert "latents" in speech.json()["detail"]["message"]
    assert post(tone_server, "Hi.").status_code == 200  # the slots were given back


@pytest.mark.parametrize("path", ["", "/with-timestamps"])
def test_client_leaving_a_whole_file_request_cancels_its_generation(
    tone_server: Server, path: str
) -> None:
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        post(tone_server, LONG_TEXT, path, timeout=0.5)
    wait_for(lambda: tone_server.get("/workers/idle").json()["idle_workers"] == 2)
    assert time.monotonic() - started < 4  # long before the ~8 s the text would take
    wait_for(lambda: "the client left; generation cancelled" in tone_server.logs())
    assert metric(tone_server, "xtts_sessions_active") == 0


def test_drain_lets_short_http_requests_finish_and_ends_long_ones(
    voices: Path, tmp_path: Path
) -> None:
    config = tone_config(voices)
    config["service"]["graceful_timeout_s"] = 1.5
    srv = start_server(tmp_path, config)
    srv.wait_ready()
    answers: dict[str, httpx.Response | Exception] = {}

    def request(name: str, text: str, path: str) -> None:
        try:
            answers[name] = post(srv, text, path)
        except httpx.HTTPError as exc:
            answers[name] = exc

    threads = [
        threading.Thread(target=request, args=("short", "Short one.", "")),
        threading.Thread(target=request, args=("long", LONG_TEXT, "")),
    ]
    for thread in threads:
        thread.start()
    wait_for(lambda: srv.get("/workers/idle").json()["idle_workers"] == 0)
    srv.process.send_signal(signal.SIGTERM)
    threads[0].join(10)
    short = answers["short"]
    assert isinstance(short, httpx.Response) and short.status_code == 200, short
    assert len(short.content) == 2 * SAMPLES_PER_CHAR * len("Short one.")
    threads[1].join(10)
    long = answers["long"]
    assert isinstance(long, httpx.Response) and long.status_code == 503, (long, srv.logs())
    assert long.json()["detail"]["status"] == "shutting_down"
    assert srv.process.wait(15) == 0, srv.logs()


def test_streamed_http_request_is_aborted_at_the_end_of_the_drain(
    voices: Path, tmp_path: Path
) -> None:
    config = tone_config(voices)
    config["service"]["graceful_timeout_s"] = 0.5
    srv = start_server(tmp_path, config)
    srv.wait_ready()
    received = bytearray()
    with (
        httpx.stream(
            "POST", f"{srv.http_url}/v1/text-to-speech/{CLIP_VOICE}/stream",
            params={"output_format": "pcm_24000"}, json={"text": LONG_TEXT},
            headers={"xi-api-key": KEY}, timeout=30,
        ) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):  # fmt: skip
        assert response.status_code == 200
        for piece in response.iter_bytes():
            received += piece
            if srv.process.poll() is None and len(received) > 0:
                srv.process.send_signal(signal.SIGTERM)
    assert 0 < len(received) < 2 * SAMPLES_PER_CHAR * len(LONG_TEXT)  # truncated, visibly
    assert srv.process.wait(15) == 0, srv.logs()


# --- the voice list -------------------------------------------------------------------------------


def test_a_worker_ready_late_neither_hides_an_added_voice_nor_revives_a_deleted_one() -> None:
    config = WorkerConfig("w", None, None, "fp32", None, None, Path(), "en", 1, None, "Hi.", 20)
    supervisor = Supervisor(
        [config, config], startup_timeout_s=1, restart_backoff_s=1, max_restarts=0,
        stop_timeout_s=1, on_change=lambda: None, on_restart=lambda: None,
    )  # fmt: skip
    first, second = supervisor.workers
    scanned = ("default", "narrator", "old")  # the library when both workers scanned it
    supervisor._on_message(first, 0, Ready(scanned, ("en",), 24000, 1))
    supervisor.add_voice("new")
    supervisor.remove_voice("old")
    supervisor._on_message(second, 0, Ready(scanned, ("en",), 24000, 2))
    assert supervisor.voices == {"default", "narrator", "new"}
    supervisor.add_voice("old")  # added again (the same id): served again
    assert "old" in supervisor.voices
