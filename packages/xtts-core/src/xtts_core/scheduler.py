"""Many streams, one model: a thread that runs every active text's next code as one batched step.

:class:`BatchScheduler` owns a :class:`~xtts_core.batch.BatchDecoder` and the thread that drives
it. :meth:`~BatchScheduler.submit` may be called from any thread: it splits and tokenises the text
at once, so a bad text fails in the caller before any work, and returns a :class:`SpeechJob` whose
audio chunks arrive on a thread-safe queue as the batch produces them. The thread admits waiting
jobs first come, first served while stream slots are free, steps the decoder, feeds each stream's
latents to its job's :class:`~xtts_core.chunking.ChunkedSpeech` (the same assembler a solo
:meth:`XttsEngine.stream <xtts_core.engine.XttsEngine.stream>` uses, so the audio is the same up
to float rounding), moves a job on to its next segment in the slot its last one just freed (a
long text keeps its place), and drops cancelled jobs within one step.

Vocoding runs on the same thread between decode steps. On a GPU, the HiFi-GAN windows that
several jobs have due in one step are vocoded together in batched generator calls (right-padded
and masked, so each job's audio is what it would be alone; see
:func:`~xtts_core.chunking.vocode_pending`): there a window's convolutions are too small to fill
the device. On a CPU they are vocoded one job after another: one window already fills the cores,
and a batched call measured about twice as slow as the same windows one by one
(``bench/bench_batch.py``, mid size, 2 cores). ``batch_vocoding`` overrides either choice.

Every step is timed (decode, prefill and vocoding together: the thread's whole cost of giving each
stream one more code) into :attr:`BatchScheduler.capacity`, which tells how many streams stay
faster than real time (see :mod:`xtts_core.capacity`).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xtts_core._extras import require_inference

require_inference("xtts_core.scheduler")

from xtts_core.batch import BatchDecoder, BatchedStream  # noqa: E402
from xtts_core.capacity import RealtimeCapacity  # noqa: E402
from xtts_core.chunking import (  # noqa: E402
    AudioChunk,
    ChunkedSpeech,
    PendingChunk,
    StreamOptions,
    iter_vocoded,
)
from xtts_core.errors import JobCancelledError, ParameterError  # noqa: E402
from xtts_core.generate import SamplingParams  # noqa: E402

if TYPE_CHECKING:
    from xtts_core.engine import XttsEngine
    from xtts_core.voice import Voice

logger = logging.getLogger(__name__)


class SchedulerFailedError(RuntimeError):
    """A batched step failed for a reason of no single job (a device error, a bug): every job
    ended with this error and the scheduler is closed. A process serving from it should exit and
    be restarted; an error of one job's own (a segment that does not fit) fails that job alone.
    """


@dataclass(frozen=True)
class _End:
    """Queue marker: the job is over, normally (``error`` None) or not."""

    error: BaseException | None = None


class SpeechJob:
    """One submitted text: iterate it for its :class:`~xtts_core.chunking.AudioChunk` s.

    Iteration blocks until the next chunk, ends after the final one, raises the error that
    stopped the job, or :class:`~xtts_core.errors.JobCancelledError` once :meth:`cancel` was called.
    """

    def __init__(
        self, ident: int, segments: list[list[int]], voice: Voice, params: SamplingParams,
        speech: ChunkedSpeech,
    ) -> None:  # fmt: skip
        self.id = ident
        self.segments = segments
        self.voice = voice
        self.params = params
        self.speech = speech
        self.segment = -1  # index of the segment being decoded
        self.stream: BatchedStream | None = None
        self._chunks: queue.SimpleQueue[AudioChunk | _End] = queue.SimpleQueue()
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop the job; its stream slot is free within one decode step. Safe from any thread."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def get(self, timeout: float | None = None) -> AudioChunk | None:
        """The next chunk, or None when the job is over; raises like iteration does."""
        item = self._chunks.get(timeout=timeout)
        if isinstance(item, AudioChunk):
            return item
        self._chunks.put(item)  # later calls see the end too
        if item.error is not None:
            raise item.error
        return None

    def __iter__(self) -> Iterator[AudioChunk]:
        while (chunk := self.get()) is not None:
            yield chunk

    def deliver(self, chunk: AudioChunk | None) -> None:
        """Hand a chunk to the reader (the scheduler's side; None is ignored)."""
        if chunk is not None:
            self._chunks.put(chunk)

    def finish(self, error: BaseException | None = None) -> None:
        """No more chunks: the reader's iteration ends, or raises ``error``."""
        self._chunks.put(_End(error))


class BatchScheduler:
    """Serve submitted texts from one engine, up to ``max_streams`` decoding in each step.

    Use it as a context manager, or call :meth:`start` and :meth:`close`. ``batch_vocoding`` and
    ``vocode_max_padding`` choose how the chunks due in one step are vocoded (see
    :func:`~xtts_core.chunking.vocode_pending`); ``memory_budget`` caps the KV pool's bytes
    (:class:`~xtts_core.batch.BatchDecoder`); a step counts as real time while it takes at most
    ``realtime_safety`` of the audio one code stands for (:attr:`capacity`).

    ``cuda_graphs`` runs decode steps in fixed shapes replayed as CUDA graphs
    (:mod:`xtts_core.decode_graphs`) when the GPT is on a CUDA device, where they pay; elsewhere
    it has no effect. They are all captured here, before the first job, so no request waits for
    a capture; a capture that fails leaves the decoder on its dynamic steps, with a warning.
    """

    def __init__(
        self, engine: XttsEngine, max_streams: int = 8, prefill_chunk: int = 128,
        max_positions: int | None = None, batch_vocoding: bool | None = None,
        vocode_max_padding: float = 0.25, memory_budget: int | None = None,
        realtime_safety: float = 0.8, cuda_graphs: bool = True,
    ) -> None:  # fmt: skip
        if vocode_max_padding < 0:
            raise ParameterError(f"vocode_max_padding must be >= 0, got {vocode_max_padding}")
        self.engine = engine
        cfg = engine.config
        self.capacity = RealtimeCapacity(
            max_streams, cfg.gpt.code_stride_len / cfg.decoder.input_sample_rate, realtime_safety
        )
        on_cuda = engine.model.gpt.mel_head.weight.device.type == "cuda"
        self.decoder = BatchDecoder(
            engine.model.gpt, max_streams, prefill_chunk, max_positions, memory_budget,
            decode_graphs=cuda_graphs and on_cuda, prefix_cache=engine.prefix_cache,
        )  # fmt: skip
        self.decoder.capture_graphs()
        self.batch_vocoding = on_cuda if batch_vocoding is None else batch_vocoding
        self.vocode_max_padding = vocode_max_padding
        self._waiting: deque[SpeechJob] = deque()
        self._active: dict[int, SpeechJob] = {}  # by BatchedStream id
        self._wake = threading.Condition()
        self._stopping = False
        self._failure: SchedulerFailedError | None = None
        self._ids = itertools.count()
        self._thread = threading.Thread(target=self._run, name="xtts-batch", daemon=True)

    def __enter__(self) -> BatchScheduler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop the thread; jobs still waiting or running end with ``JobCancelledError``."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def failed(self) -> SchedulerFailedError | None:
        """Why the scheduler stopped on its own (see :class:`SchedulerFailedError`), if it did."""
        return self._failure

    @property
    def waiting(self) -> int:
        """Jobs submitted but not yet decoding (all slots were taken)."""
        return len(self._waiting)

    def submit(
        self, text: str, language: str, voice: Voice, params: SamplingParams | None = None,
        speed: float = 1.0, options: StreamOptions | None = None, split_text: bool = True,
        normalize: bool = True,
    ) -> SpeechJob:  # fmt: skip
        """Queue ``text``; text, language and parameter errors are raised here, not later.
        ``normalize`` off reads numbers, abbreviations and symbols as written."""
        pieces = self.engine.segments(text, language, split_text, normalize=normalize)
        segments = [
            self.engine.tokenizer.encode(piece, language, normalize=normalize) for piece in pieces
        ]
        speech = self.engine.chunked_speech(voice, len(segments), speed, options)
        job = SpeechJob(next(self._ids), segments, voice, params or SamplingParams(), speech)
        with self._wake:
            if self._failure is not None:
                raise self._failure
            if self._stopping:
                raise RuntimeError("the scheduler is closed")
            self._waiting.append(job)
            self._wake.notify()
        return job

    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._stopping or self._waiting or self.decoder.active):
                    self._wake.wait()
                if self._stopping:
                    break
            try:
                with self._wake:
                    self._admit()
                started = time.perf_counter()
                self._drop_cancelled()
                if streams := self._step():
                    self.capacity.record(streams, time.perf_counter() - started)
            except Exception as exc:  # no caller may wait forever, and no step runs after this
                logger.exception(
                    "batched decode step failed; the scheduler stops and fails its %d jobs",
                    len(self._active),
                )
                failure = SchedulerFailedError(f"batched step failed: {type(exc).__name__}: {exc}")
                failure.__cause__ = exc
                with self._wake:
                    self._failure, self._stopping = failure, True
                self._fail_all(failure, include_waiting=True)
                return
        self._fail_all(JobCancelledError("the scheduler was closed"), include_waiting=True)

    def _admit(self) -> None:
        while self._waiting and self.decoder.free_slots:
            job = self._waiting.popleft()
            if job.cancelled:
                job.finish(JobCancelledError(f"job {job.id} was cancelled"))
            else:
                self._next_segment(job)

    def _next_segment(self, job: SpeechJob) -> None:
        job.segment += 1
        try:
            job.speech.begin_segment()
            job.stream = self.decoder.add(
                job.voice.gpt_cond_latent, job.segments[job.segment], job.params
            )
        except Exception as exc:  # e.g. a segment that does not fit a slot: fail this job only
            logger.warning("job %d cannot start segment %d: %s", job.id, job.segment, exc)
            job.finish(exc)
            return
        self._active[job.stream.id] = job

    def _drop_cancelled(self) -> None:
        for stream_id, job in list(self._active.items()):
            if job.cancelled:
                assert job.stream is not None
                self.decoder.cancel(job.stream)
                del self._active[stream_id]
                job.finish(JobCancelledError(f"job {job.id} was cancelled"))

    def _step(self) -> int:
        """One decode step, then its chunks: first those due mid-segment, then the last chunks
        of segments that ended (a job's own chunks stay in order), each set vocoded together.
        Returns how many streams drew a code."""
        outputs = self.decoder.step()
        jobs = [self._active[out.stream.id] for out in outputs]
        due = [
            (job, job.speech.push_pending(out.latent))
            for job, out in zip(jobs, outputs, strict=True)
        ]
        self._vocode([(job, p) for job, p in due if p is not None])
        ended = [job for job, out in zip(jobs, outputs, strict=True) if out.finished]
        for out in outputs:
            if out.finished:
                del self._active[out.stream.id]
        self._vocode([(job, job.speech.end_pending()) for job in ended])
        for job in ended:
            if job.segment + 1 < len(job.segments):
                self._next_segment(job)  # the slot this segment freed
            else:
                job.finish()
        return len(outputs)

    def _vocode(self, due: list[tuple[SpeechJob, PendingChunk]]) -> None:
        chunks = iter_vocoded([p for _, p in due], self.batch_vocoding, self.vocode_max_padding)
        for i, chunk in chunks:  # each job gets its chunk as soon as its vocoder call is done
            due[i][0].deliver(chunk)

    def _fail_all(self, error: BaseException, include_waiting: bool = False) -> None:
        for job in self._active.values():
            if job.stream is not None:
                self.decoder.cancel(job.stream)
            job.finish(error)
        self._active.clear()
        if include_waiting:
            with self._wake:
                while self._waiting:
                    self._waiting.popleft().finish(error)
