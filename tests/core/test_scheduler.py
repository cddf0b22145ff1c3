"""BatchScheduler: concurrent texts from one engine sound as they do streamed alone.

Each job's chunks are compared with ``XttsEngine.stream`` of the same text and seed (the solo
path, parity-tested against the reference); batching changes latents only by float rounding.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

import numpy as np
import pytest

pytest.importorskip("torch")

from forced_codes import forced

from xtts_core import chunking
from xtts_core.chunking import AudioChunk, StreamOptions
from xtts_core.errors import JobCancelledError, ParameterError, TextError
from xtts_core.scheduler import BatchScheduler
from xtts_core.stream import vocode_windows

if TYPE_CHECKING:
    import torch

    from xtts_core.engine import XttsEngine
    from xtts_core.model.hifigan import HifiganGenerator
    from xtts_core.stream import VocodeWindow
    from xtts_core.voice import Voice

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-3  # audio, float32; batched latents differ from solo ones by rounding only


def audio(chunks: list[AudioChunk]) -> np.ndarray:
    return np.concatenate([c.samples for c in chunks])


def test_concurrent_jobs_match_their_solo_streams(
    engine_fast_vocoder: XttsEngine, voice: Voice
) -> None:
    engine = engine_fast_vocoder
    long_text = "First sentence here. " * 12 + "And the last one."  # several segments
    jobs_spec = [
        ("Hello there, how are you?", forced(14, 1)),
        (long_text, forced(5, 2)),
        ("Short.", forced(9, 3)),
    ]
    assert len(engine.segments(long_text, "en")) > 1
    solo = [list(engine.stream(text, "en", voice, params)) for text, params in jobs_spec]
    with BatchScheduler(engine, max_streams=2, prefill_chunk=32) as scheduler:
        jobs = [scheduler.submit(text, "en", voice, params) for text, params in jobs_spec]
        got = [list(job) for job in jobs]  # the third waits for a slot, then runs
    for ref, chunks in zip(solo, got, strict=True):
        assert [c.index for c in chunks] == list(range(len(chunks)))
        assert [c.is_final for c in chunks] == [False] * (len(chunks) - 1) + [True]
        assert chunks[-1].codes_so_far == ref[-1].codes_so_far
        assert [c.samples.size for c in chunks] == [c.samples.size for c in ref]
        np.testing.assert_allclose(audio(chunks), audio(ref), atol=TOL)


def test_cancel_ends_the_job_and_frees_its_slot(
    engine_fast_vocoder: XttsEngine, voice: Voice
) -> None:
    engine = engine_fast_vocoder
    with BatchScheduler(engine, max_streams=1) as scheduler:
        victim = scheduler.submit(
            "A long sentence that we stop early.", "en", voice, forced(200, 1)
        )
        waiting = scheduler.submit("Next.", "en", voice, forced(8, 2))
        first = victim.get(timeout=60)
        assert first is not None
        victim.cancel()
        with pytest.raises(JobCancelledError):
            for _ in victim:
                pass
        # the waiting job gets the slot and completes
        chunks = list(waiting)
        assert chunks[-1].is_final
        assert chunks[-1].codes_so_far == 8


def test_cancel_while_waiting(engine_fast_vocoder: XttsEngine, voice: Voice) -> None:
    with BatchScheduler(engine_fast_vocoder, max_streams=1) as scheduler:
        running = scheduler.submit("Running.", "en", voice, forced(30, 1))
        queued = scheduler.submit("Queued.", "en", voice, forced(30, 2))
        queued.cancel()
        with pytest.raises(JobCancelledError):
            list(queued)
        assert list(running)[-1].is_final


def test_bad_text_fails_at_submit(engine_fast_vocoder: XttsEngine, voice: Voice) -> None:
    with BatchScheduler(engine_fast_vocoder, max_streams=1) as scheduler:
        with pytest.raises(TextError):
            scheduler.submit("   ", "en", voice)
        with pytest.raises(TextError, match="not supported"):
            scheduler.submit("Hello.", "xx", voice)
        assert scheduler.waiting == 0


def test_bad_speed_fails_at_submit(engine_fast_vocoder: XttsEngine, voice: Voice) -> None:
    with BatchScheduler(engine_fast_vocoder, max_streams=1) as scheduler:
        for speed in (0.0, -1.0, float("nan")):
            with pytest.raises(ParameterError, match="speed"):
                scheduler.submit("Hello.", "en", voice, speed=speed)
        assert list(scheduler.submit("Hello.", "en", voice, forced(3, 1)))[-1].is_final


def test_a_job_failing_at_admission_fails_alone(
    engine_fast_vocoder: XttsEngine, voice: Voice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong while a job is admitted ends that job, not the scheduler's thread
    (which would leave every other job waiting forever)."""
    scheduler = BatchScheduler(engine_fast_vocoder, max_streams=1)
    broken = scheduler.submit("Broken.", "en", voice, forced(3, 1))
    fine = scheduler.submit("Fine.", "en", voice, forced(3, 2))

    def fail() -> None:
        raise RuntimeError("cannot begin")

    monkeypatch.setattr(broken.speech, "begin_segment", fail)
    with scheduler:
        with pytest.raises(RuntimeError, match="cannot begin"):
            broken.get(timeout=60)  # a dead scheduler thread would raise queue.Empty instead
        chunks = []
        while (chunk := fine.get(timeout=60)) is not None:
            chunks.append(chunk)
        assert chunks[-1].codes_so_far == 3


def test_close_cancels_unfinished_jobs(engine_fast_vocoder: XttsEngine, voice: Voice) -> None:
    scheduler = BatchScheduler(engine_fast_vocoder, max_streams=1)
    scheduler.start()
    running = scheduler.submit("Running.", "en", voice, forced(400, 1))
    queued = scheduler.submit("Queued.", "en", voice, forced(5, 2))
    assert running.get(timeout=60) is not None
    scheduler.close()
    for job in (running, queued):
        with pytest.raises(JobCancelledError, match="closed"):
            list(job)
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.submit("Late.", "en", voice)


def test_submit_from_many_threads(engine_fast_vocoder: XttsEngine, voice: Voice) -> None:
    results: dict[int, int] = {}
    with BatchScheduler(engine_fast_vocoder, max_streams=3) as scheduler:

        def client(i: int) -> None:
            job = scheduler.submit(f"Client number {i}.", "en", voice, forced(4 + i, i))
            results[i] = list(job)[-1].codes_so_far

        threads = [threading.Thread(target=client, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert results == {i: 4 + i for i in range(5)}


def test_a_job_that_cannot_start_fails_alone(engine_fast_vocoder: XttsEngine, voice: Voice) -> None:
    # slots of 60 positions: a long prompt plus its codes does not fit one
    with BatchScheduler(engine_fast_vocoder, max_streams=1, max_positions=60) as scheduler:
        too_long = scheduler.submit(
            "A sentence far too long for these tiny slots.", "en", voice, forced(30, 1)
        )
        fine = scheduler.submit("Hi.", "en", voice, forced(4, 2))
        with pytest.raises(ParameterError, match="does not fit"):
            list(too_long)
        assert list(fine)[-1].codes_so_far == 4


def test_batched_vocoding_sounds_as_vocoding_per_job(
    engine_fast_vocoder: XttsEngine, voice: Voice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs joining and leaving at different times, with other voices, speeds and chunk sizes:
    the chunks vocoded together in one call equal those vocoded one job after another. All jobs
    are queued before the thread starts, so both runs decode the same schedule and the same
    latents; only the vocoding differs."""
    engine = engine_fast_vocoder
    other = engine.speaker("Other Speaker")
    specs = [
        ("Hello there, how are you?", voice, forced(21, 1), 1.0, StreamOptions(1, 3)),
        ("One two three four.", other, forced(9, 2), 1.3, StreamOptions(2, 2)),
        ("Short.", voice, forced(13, 3), 0.8, StreamOptions(3, 4)),
        ("Later on.", other, forced(17, 4), 1.0, StreamOptions(1, 2, lookahead_frames=4)),
    ]
    calls: list[list[int]] = []  # window sizes of each generator call

    def spy(generator: HifiganGenerator, windows: list[VocodeWindow]) -> list[torch.Tensor]:
        calls.append([w.size for w in windows])
        return vocode_windows(generator, windows)

    monkeypatch.setattr(chunking, "vocode_windows", spy)

    def run(batch: bool) -> list[list[AudioChunk]]:
        scheduler = BatchScheduler(
            engine, max_streams=3, prefill_chunk=64, batch_vocoding=batch,
            vocode_max_padding=math.inf,
        )  # fmt: skip
        jobs = [
            scheduler.submit(text, "en", v, p, speed=speed, options=options)
            for text, v, p, speed, options in specs
        ]
        with scheduler:
            return [list(job) for job in jobs]

    together = run(True)
    assert any(len(set(sizes)) > 1 for sizes in calls)  # padded rows shared a call
    calls.clear()
    alone = run(False)
    assert max(map(len, calls)) == 1
    for a, b in zip(together, alone, strict=True):
        assert [c.samples.size for c in a] == [c.samples.size for c in b]
        np.testing.assert_allclose(audio(a), audio(b), rtol=0, atol=1e-5)


def test_negative_vocode_padding_is_refused(engine_fast_vocoder: XttsEngine) -> None:
    with pytest.raises(ParameterError, match="vocode_max_padding"):
        BatchScheduler(engine_fast_vocoder, vocode_max_padding=-0.1)
