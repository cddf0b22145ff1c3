"""Unit tests of the balancer's pieces that need no server: text triggers, alignment, encoding,
settings, auth and the slot pool."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xtts_balancer.alignment import SegmentAligner
from xtts_balancer.audio import AudioEncoder, alaw_encode, pcm16, ulaw_encode
from xtts_balancer.auth import Authenticator
from xtts_balancer.errors import SessionError
from xtts_balancer.pool import NoCapacityError, SlotPool
from xtts_balancer.segments import TextBuffer
from xtts_balancer.settings import AuthSection, BalancerSettings, hash_api_key
from xtts_balancer.state import GenerationLog
from xtts_balancer.supervisor import WorkerHandle
from xtts_balancer.worker.ipc import WorkerConfig
from xtts_core.audio import resample
from xtts_core.errors import SettingsError
from xtts_core.protocol import AudioFormat, bearer, message_api_key, request_api_key
from xtts_core.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]

# --- when text is spoken -----------------------------------------------------------------------


def test_sentence_ends_are_spoken_as_soon_as_certain() -> None:
    buffer = TextBuffer("en", [500])
    assert buffer.add("Hello there. How") == ["Hello there."]
    assert buffer.add(" are you? I am") == ["How are you?"]
    assert buffer.pending == "I am"
    assert buffer.finish() == ["I am"]


def test_abbreviations_and_decimals_do_not_cut() -> None:
    buffer = TextBuffer("en", [500])
    assert buffer.add("Dr. Smith paid 3.5 dollars. ") == []  # undecided until more text comes
    assert buffer.add("Then") == ["Dr. Smith paid 3.5 dollars."]


def test_schedule_speaks_complete_words_and_the_last_value_repeats() -> None:
    buffer = TextBuffer("en", [50, 60])
    assert buffer.add("word " * 9 + "half") == []  # 49 characters: under the first threshold
    buffer = TextBuffer("en", [50, 60])
    assert buffer.add("a" * 10 + " " + "b" * 45) == ["a" * 10]  # the half-sent word stays
    assert buffer.pending == "b" * 45
    assert buffer.add(" " + "c" * 10) == []  # 56 characters: the schedule moved on to 60
    assert buffer.add("c" * 10) == ["b" * 45]
    assert buffer.add(" " + "d" * 39) == ["c" * 20]  # 60 again: the last value repeats


def test_flush_try_trigger_and_auto_mode() -> None:
    buffer = TextBuffer("en", [500])
    assert buffer.add("tiny", flush=True) == ["tiny"]
    assert buffer.add("x " * 10, try_trigger=True) == []  # under 50 characters: a hint only
    assert buffer.add("y " * 20, try_trigger=True) == [("x " * 10 + "y " * 20).strip()]
    auto = TextBuffer("en", [500], auto_mode=True)
    assert auto.add("no sentence end here ") == ["no sentence end here"]


def test_a_tag_still_being_sent_is_never_cut() -> None:
    """``auto_mode`` and the schedule cut at the last whitespace, but not inside a ``<break>``."""
    auto = TextBuffer("en", [500], auto_mode=True)
    assert auto.add('Wait for it <break time="1') == ["Wait for it"]
    assert auto.add('s"/> now ') == ['<break time="1s"/> now']
    scheduled = TextBuffer("en", [50])
    assert scheduled.add("x" * 45 + ' <break time="2') == ["x" * 45]
    assert scheduled.add('s"/> y', flush=True) == ['<break time="2s"/> y']


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["Hi. ", "Dr. No ", "ok", " ", "yes! ", "3.5 ", "a"]), max_size=12),
       st.data())  # fmt: skip
def test_every_character_is_spoken_once_in_order(pieces: list[str], data: st.DataObject) -> None:
    buffer = TextBuffer("en", [50, 60])
    spoken: list[str] = []
    for piece in pieces:
        spoken += buffer.add(piece, flush=data.draw(st.booleans()))
    spoken += buffer.finish()
    assert all(segment == segment.strip() and segment for segment in spoken)
    assert "".join(spoken).replace(" ", "") == "".join(pieces).replace(" ", "")


# --- alignment ------------------------------------------------------------------------------------


def test_alignment_covers_each_character_once_inside_each_message() -> None:
    aligner = SegmentAligner(ms_per_char=50)
    aligner.start("Hello world ", speed=1.0)
    messages = [aligner.take(100, last=False), aligner.take(100, last=False)]
    messages.append(aligner.take(37, last=True))
    chars = []
    for message, duration in zip(messages, (100, 100, 37), strict=True):
        assert message is not None
        assert message.char_start_times_ms[0] == 0
        assert sum(message.char_durations_ms) == duration
        chars += message.chars
    assert "".join(chars) == "Hello world "
    assert messages[0] is not None and messages[0].chars == list("He")  # due at 0 and 50 ms


def test_alignment_carries_characters_of_a_silent_segment() -> None:
    aligner = SegmentAligner(ms_per_char=50)
    aligner.start("ab ", speed=1.0)  # no audio at all: take() never called
    aligner.start("cd ", speed=2.0)
    first = aligner.take(10, last=False)
    assert first is not None and first.chars == list("ab c")  # carried ones are due at once
    last = aligner.take(10, last=True)
    assert last is not None and last.chars == list("d ")
    assert aligner.take(10, last=True) is None


# --- encoding -------------------------------------------------------------------------------------


def test_g711_encoders_match_the_reference_tables() -> None:
    samples = np.arange(-32768, 32768, dtype=np.int16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    raw = samples.astype("<i2").tobytes()
    assert ulaw_encode(samples) == audioop.lin2ulaw(raw, 2)
    assert alaw_encode(samples) == audioop.lin2alaw(raw, 2)


def test_pcm16_clips_and_rounds() -> None:
    assert pcm16(np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0])).tolist() == [
        -32767, -32767, 0, 16384, 32767, 32767,
    ]  # fmt: skip


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_encoder_resamples_a_segment_as_one_piece(rate: int) -> None:
    wav = np.random.default_rng(0).uniform(-0.5, 0.5, 24000).astype(np.float32)
    encoder = AudioEncoder(AudioFormat("pcm", rate, None), 24000)
    streamed = b"".join(encoder.encode(wav[i : i + 1234]) for i in range(0, wav.size, 1234))
    streamed += encoder.end_segment()
    whole = pcm16(resample(torch.from_numpy(wav), 24000, rate).numpy()).astype("<i2").tobytes()
    got, want = np.frombuffer(streamed, "<i2"), np.frombuffer(whole, "<i2")
    assert got.size == want.size == math.ceil(24000 * rate / 24000)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert encoder.duration_ms(streamed) == pytest.approx(1000, abs=0.1)


def test_encoder_splits_on_sample_boundaries() -> None:
    encoder = AudioEncoder(AudioFormat("pcm", 24000, None), 24000)
    pieces = encoder.split(bytes(48000), 100)
    assert [len(p) for p in pieces] == [4800] * 10
    assert encoder.end_segment() == b""


# --- settings and auth ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["balancer.example.yaml", "balancer.docker.yaml"])
def test_shipped_configs_load_with_an_env_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("XTTS_BALANCER_MODEL__DIRECTORY", str(tmp_path))
    monkeypatch.setenv("XTTS_BALANCER_SERVICE__PORT", "9123")
    loaded = load_settings(BalancerSettings, ROOT / "configs" / name)
    assert loaded.model.directory == tmp_path and loaded.service.port == 9123
    assert loaded.device_for(3) is None  # auto


def test_config_file_from_xtts_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "b.yaml"
    config.write_text(
        f"model: {{directory: {tmp_path}}}\nauth: {{enabled: false}}\n"
        "workers: {devices: [cuda:0, cuda:1]}\nservice: {instances: 3}\n"
    )
    monkeypatch.setenv("XTTS_CONFIG_FILE", str(config))
    loaded = load_settings(BalancerSettings)
    assert loaded.loaded_from == config
    assert [loaded.device_for(i) for i in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("model: {{directory: {d}}}\nauth: {{enabled: false}}\nqueue: {{max_qeue: 3}}",
         "queue.max_qeue: unknown key"),
        ("model: {{directory: {d}}}", "auth: required"),
        ("model: {{directory: {d}}}\nauth: {{}}", "auth is enabled but api_key_hashes is empty"),
        ("model: {{directory: {d}}}\nauth: {{api_key_hashes: [abc]}}", "sha256:<64 lower-case hex digits>"),
        ("model: {{directory: {d}/nope}}\nauth: {{enabled: false}}", "does not exist"),
        ("model: {{directory: {d}}}\nauth: {{enabled: false}}\nstream: "
         "{{default_output_format: wav_16000}}", "served only by the whole-file HTTP endpoint"),
        ("model: {{directory: {d}}}\nauth: {{enabled: false}}\nservice: "
         "{{standalone_mode: false}}", "needs broker_host and broker_port"),
        ("model: {{directory: {d}}}\nauth: {{enabled: false}}\nservice: {{standalone_mode: false, "
         "broker_host: b, broker_port: 1}}", "needs cluster.secret"),
        ("model: {{directory: {d}}}\nauth: {{enabled: false}}\nservice: "
         "{{tls_certfile: a.pem}}", "set together"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_file_and_the_field(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    config = tmp_path / "b.yaml"
    config.write_text(yaml_text.format(d=tmp_path))
    with pytest.raises(SettingsError) as info:
        load_settings(BalancerSettings, config)
    assert str(config) in str(info.value) and message in str(info.value)


def test_auth_checks_hashes_and_finds_keys_everywhere() -> None:
    assert hash_api_key("k") == "sha256:" + hashlib.sha256(b"k").hexdigest()
    auth = Authenticator(AuthSection(api_key_hashes=[hash_api_key("good")]))
    assert auth.check("good") == hashlib.sha256(b"good").hexdigest()[:16]
    for bad in ("bad", "", None):
        with pytest.raises(SessionError) as info:
            auth.check(bad)
        assert info.value.error == "invalid_api_key" and info.value.code == 1008
    assert Authenticator(AuthSection(enabled=False)).check(None) == "anonymous"


@pytest.mark.parametrize(
    ("headers", "query", "key"),
    [
        ({"xi-api-key": "h", "authorization": "Bearer a"}, {"xi_api_key": "q"}, "h"),
        ({"authorization": "Bearer a"}, {"xi_api_key": "q"}, "a"),
        ({"authorization": "bare"}, {}, "bare"),
        ({}, {"xi_api_key": "q", "authorization": "Bearer qa"}, "q"),
        ({}, {"authorization": "Bearer qa"}, "qa"),
        ({"xi-api-key": " ", "authorization": "Bearer "}, {"xi_api_key": ""}, None),
    ],
)
def test_api_key_is_found_in_the_protocols_order(
    headers: dict[str, str], query: dict[str, str], key: str | None
) -> None:
    assert request_api_key(headers, query) == key


def test_first_message_key_and_bearer() -> None:
    assert bearer("Bearer tok") == "tok" and bearer("tok") == "tok" and bearer("Bearer ") is None
    assert message_api_key({"xi_api_key": "a", "authorization": "Bearer b"}) == "a"
    assert message_api_key({"xi-api-key": "c"}) == "c"
    assert message_api_key({"authorization": "Bearer b", "xi_api_key": 3}) == "b"
    assert message_api_key({"text": " "}) is None


# --- slot pool ------------------------------------------------------------------------------------


def _workers(count: int) -> list[WorkerHandle]:
    config = WorkerConfig("w", Path(), None, "fp32", None, None, Path(), "en", 1, None, "Hi.", 20)
    workers = [WorkerHandle(i, config) for i in range(count)]
    for worker in workers:
        worker.state, worker.incarnation = "ready", 1
    return workers


def test_pool_first_free_slot_fifo_queue_and_limits() -> None:
    async def scenario() -> None:
        workers = _workers(2)
        pool = SlotPool(workers, slots_per_worker=1, max_queue=2, queue_timeout_s=5)
        first, second = await pool.acquire(), await pool.acquire()
        assert (first.worker.index, second.worker.index) == (0, 1) and pool.free_slots == 0
        waiters = [asyncio.ensure_future(pool.acquire()) for _ in range(2)]
        await asyncio.sleep(0)
        assert pool.queued == 2
        with pytest.raises(NoCapacityError, match="queue is full"):
            await pool.acquire()
        pool.release(second)
        pool.release(second)  # a second release frees nothing
        got = await waiters[0]
        assert got.worker.index == 1 and not waiters[1].done()  # FIFO: the first waiter
        workers[0].incarnation += 1  # worker 0 restarted: the old lease frees nothing
        workers[0].busy = 1
        pool.release(first)
        assert workers[0].busy == 1 and not waiters[1].done()
        waiters[1].cancel()
        await asyncio.gather(waiters[1], return_exceptions=True)
        assert pool.queued == 0

    asyncio.run(scenario())


def test_pool_wait_times_out_and_dead_workers_have_no_slots() -> None:
    async def scenario() -> None:
        workers = _workers(1)
        pool = SlotPool(workers, slots_per_worker=2, max_queue=1, queue_timeout_s=0.05)
        workers[0].state = "dead"
        assert pool.free_slots == 0
        with pytest.raises(NoCapacityError, match=r"within 0\.05 seconds"):
            await pool.acquire()
        assert pool.queued == 0
        waiter = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0)
        workers[0].state = "ready"
        pool.dispatch()  # a worker became ready: the waiter gets its slot at once
        assert (await waiter).worker is workers[0] and pool.free_slots == 1

    asyncio.run(scenario())


# --- pacing and the generation log ------------------------------------------------------------------


def test_pacer_keeps_audio_at_most_lead_ms_ahead_of_real_time() -> None:
    from xtts_balancer.sending import Pacer

    async def send(pacer: Pacer, chunks: int) -> float:
        t0 = time.monotonic()
        for _ in range(chunks):
            await pacer.wait(100.0)
        return time.monotonic() - t0

    async def scenario() -> None:
        assert await send(Pacer(None), 20) < 0.1  # off: as fast as generated
        paced = Pacer(100.0)
        took = await send(paced, 5)  # 500 ms of audio, 100 ms lead: about 0.3 s of waiting
        assert 0.25 <= took < 0.6
        paced.reset()  # a new burst of speech: the clock starts again
        assert await send(paced, 2) < 0.1

    asyncio.run(scenario())


def test_generation_log_writes_one_json_line_per_segment(tmp_path: Path) -> None:
    log = GenerationLog(tmp_path / "logs")
    log.write(time_to_first_audio=0.5, real_time_factor=0.25, codes=12)
    log.write(time_to_first_audio=0.4, real_time_factor=0.2, codes=10)
    (day,) = (tmp_path / "logs").iterdir()
    lines = [json.loads(line) for line in day.read_text().splitlines()]
    assert [line["codes"] for line in lines] == [12, 10]
    assert {"timestamp", "time_to_first_audio", "real_time_factor"} <= set(lines[0])
    GenerationLog(None).write(codes=1)  # off: writes nothing, fails on nothing


# --- public names ---------------------------------------------------------------------------------


def test_every_public_name_exists() -> None:
    import importlib
    import pkgutil

    import xtts_balancer

    names = [m.name for m in pkgutil.walk_packages(xtts_balancer.__path__, "xtts_balancer.")]
    assert {"xtts_balancer.ws", "xtts_balancer.worker.main"} <= set(names)
    for name in names:
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", [])
        assert len(exported) == len(set(exported)), name
        for attribute in exported:
            assert hasattr(module, attribute), f"{name}.{attribute}"


def test_a_cancelled_job_stream_stops_even_when_its_event_arrives_at_the_same_time() -> None:
    """Regression: ``asyncio.wait_for`` (before 3.12) returned the event and swallowed the
    cancellation when both came in the same loop turn, so a session failing mid-stream (e.g.
    text over the limit) waited forever for its generator and kept its slot."""
    from types import SimpleNamespace
    from typing import Any

    from xtts_balancer.jobs import job_events
    from xtts_balancer.worker.ipc import Chunk

    async def scenario() -> tuple[bool, list[int]]:
        events: asyncio.Queue[Chunk] = asyncio.Queue()
        cancelled: list[int] = []
        supervisor = SimpleNamespace(
            submit=lambda worker, job: events,
            cancel=lambda worker, job_id: cancelled.append(job_id),
        )
        workers = SimpleNamespace(stall_timeout_s=5.0)
        state: Any = SimpleNamespace(
            supervisor=supervisor, settings=SimpleNamespace(workers=workers)
        )
        lease: Any = SimpleNamespace(worker=object())
        job: Any = SimpleNamespace(job_id=7)

        async def consume() -> None:
            async for _ in job_events(state, lease, job):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)  # waiting for the first event
        events.put_nowait(Chunk(7, b""))
        task.cancel()  # in the same loop turn as the event
        await asyncio.wait({task}, timeout=2)
        return task.cancelled(), cancelled

    assert asyncio.run(scenario()) == (True, [7])
