"""From latents to streamed audio chunks: chunk boundaries, joins between segments, denoising.

:class:`ChunkedSpeech` is fed the latents of one text, segment after segment, as the GPT makes
them, and returns an :class:`AudioChunk` whenever one is due. It does not care who drives the GPT:
:meth:`XttsEngine.stream <xtts_core.engine.XttsEngine.stream>` feeds it from one
:class:`~xtts_core.generate.CodeStream`, the :mod:`~xtts_core.scheduler` from a batched decoder
serving many texts at once, and both give the same audio for the same latents.

A due chunk can also be taken in two steps, so that a driver of many texts vocodes all the chunks
due in one step together: :meth:`ChunkedSpeech.push_pending` / :meth:`~ChunkedSpeech.end_pending`
return a :class:`PendingChunk`, and :func:`vocode_pending` vocodes a list of them in batched
generator calls and completes each into its :class:`AudioChunk` (fades, joins and denoising stay
per text).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from xtts_core._extras import require_inference

require_inference("xtts_core.chunking")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.errors import ParameterError  # noqa: E402
from xtts_core.model.hifigan import HifiDecoder, HifiganGenerator  # noqa: E402
from xtts_core.stream import (  # noqa: E402
    IncrementalVocoder,
    VocodeWindow,
    group_windows,
    speed_scale,
    vocode_windows,
)

#: Length of the linear fade at each join between segments of a long text.
JOIN_FADE_S = 0.005


@dataclass(frozen=True)
class StreamOptions:
    """Chunking of a streamed sentence, in audio codes (one code = 46.4 ms of audio).

    The first chunk is vocoded after ``first_chunk_codes`` codes so audio leaves early; each later
    chunk doubles in size up to ``chunk_codes`` (e.g. 6, 12, 20, 20, ...), so playback can start
    at once while the vocoder soon runs on fewer, larger windows. In the default exact mode the
    newest ~3.5 codes are held back until their right context exists, so the first chunk carries
    ``first_chunk_codes - 3.5`` codes of audio. ``lookahead_frames``/``overlap_samples`` trade
    that exactness for latency (see ``stream.py``). ``denoise`` runs ``noisereduce`` on each
    chunk (off by default: it changes the audio).
    """

    first_chunk_codes: int = 6
    chunk_codes: int = 20
    lookahead_frames: int | None = None
    overlap_samples: int = 0
    denoise: bool = False

    def __post_init__(self) -> None:
        if self.first_chunk_codes < 1 or self.chunk_codes < 1:
            raise ParameterError("first_chunk_codes and chunk_codes must be >= 1")


@dataclass
class AudioChunk:
    """Samples of one streamed chunk (float32, mono, ``sample_rate`` Hz) with its timing."""

    samples: np.ndarray
    sample_rate: int
    index: int
    codes_so_far: int
    is_final: bool
    elapsed_s: float


class ChunkedSpeech:
    """The audio chunks of one text spoken as ``segments`` consecutive segments.

    Call :meth:`begin_segment`, then :meth:`push` each latent of that segment, then
    :meth:`end_segment`; repeat per segment. Segments join without a gap, each join faded over
    :data:`JOIN_FADE_S` so it never clicks; the last chunk of the last segment is final.
    """

    def __init__(
        self, decoder: HifiDecoder, speaker_embedding: Tensor, sample_rate: int, segments: int,
        speed: float, options: StreamOptions, started: float | None = None,
    ) -> None:  # fmt: skip
        speed_scale(speed)  # a bad speed is the caller's error, raised here, not mid-stream
        self._decoder = decoder
        self._g = speaker_embedding
        self._segments = segments
        self._speed = speed
        self._options = options
        self._started = time.perf_counter() if started is None else started
        self.sample_rate = sample_rate
        self._fade = int(JOIN_FADE_S * self.sample_rate)
        self._segment = -1
        self._index = 0  # chunks returned
        self._codes_before = 0  # codes of the finished segments
        self._codes = 0  # codes of the current segment
        self._offset = 0  # samples of the current segment returned
        self._due = self._size = 0
        self._vocoder: IncrementalVocoder | None = None

    def begin_segment(self) -> None:
        """Start the next segment (a fresh vocoder; the chunk sizes ramp up again)."""
        if self._vocoder is not None:
            raise RuntimeError("end_segment() the current segment first")
        self._segment += 1
        self._codes_before += self._codes
        self._codes = self._offset = 0
        self._size = self._due = self._options.first_chunk_codes
        self._vocoder = IncrementalVocoder(
            self._decoder, self._g, self._speed, self._options.lookahead_frames,
            self._options.overlap_samples,
        )  # fmt: skip

    def push(self, latent: Tensor) -> AudioChunk | None:
        """Add the latent of the segment's next code; a chunk when one is due and not empty."""
        pending = self.push_pending(latent)
        return None if pending is None else vocode_pending([pending])[0]

    def end_segment(self) -> AudioChunk | None:
        """The rest of the segment's audio (always a chunk, maybe empty, for the last segment)."""
        return vocode_pending([self.end_pending()])[0]

    def push_pending(self, latent: Tensor) -> PendingChunk | None:
        """:meth:`push`, with the chunk's vocoding left to the caller (None: no chunk is due)."""
        assert self._vocoder is not None, "begin_segment() first"
        self._vocoder.push(latent)
        self._codes += 1
        if self._codes < self._due:
            return None
        self._size = min(2 * self._size, self._options.chunk_codes)
        self._due += self._size
        return PendingChunk(self, self._vocoder, final=False)

    def end_pending(self) -> PendingChunk:
        """:meth:`end_segment`, with the chunk's vocoding left to the caller."""
        assert self._vocoder is not None, "begin_segment() first"
        vocoder, self._vocoder = self._vocoder, None
        return PendingChunk(self, vocoder, final=True)

    def _chunk(self, samples: Tensor, final: bool) -> AudioChunk | None:
        last_segment = self._segment == self._segments - 1
        data = samples.cpu().numpy().astype(np.float32)
        data = _fade_joins(
            data, self._offset, self._fade, self._segment > 0, final and not last_segment
        )
        self._offset += data.size
        if data.size == 0 and not (final and last_segment):
            return None
        if self._options.denoise and data.size:
            data = _denoise(data, self.sample_rate)
        chunk = AudioChunk(
            data, self.sample_rate, self._index, self._codes_before + self._codes,
            final and last_segment, time.perf_counter() - self._started,
        )  # fmt: skip
        self._index += 1
        return chunk


class PendingChunk:
    """A due chunk of one :class:`ChunkedSpeech` whose audio window is not vocoded yet.

    Vocode :attr:`window` (None: no sample is ready) and :meth:`complete` the chunk with its wave
    before anything else is pushed to the same text; :func:`vocode_pending` does both.
    """

    def __init__(self, speech: ChunkedSpeech, vocoder: IncrementalVocoder, final: bool) -> None:
        self._speech = speech
        self._vocoder = vocoder
        self._final = final
        self.generator: HifiganGenerator = vocoder.decoder.waveform_decoder
        self.window: VocodeWindow | None = vocoder.plan(final)

    def complete(self, wav: Tensor | None) -> AudioChunk | None:
        """The chunk, given the wave of :attr:`window` (None when the window is None)."""
        if self.window is None:
            samples = torch.zeros(0)
        elif wav is None:
            raise ValueError("complete() needs the wave of the pending window")
        else:
            samples = self._vocoder.take(self.window, wav)
        return self._speech._chunk(samples, self._final)


def vocode_pending(
    pending: Sequence[PendingChunk], batch: bool = True, max_padding: float = 0.25
) -> list[AudioChunk | None]:
    """Vocode and complete chunks of different texts (at most one each), in input order.

    With ``batch`` the windows share generator calls, grouped by :func:`~xtts_core.stream.
    group_windows` so no call pads more than ``max_padding`` of its frames; without it, each
    window is vocoded alone. The audio is the same either way up to float rounding. All texts
    must use the same vocoder.
    """
    chunks: list[AudioChunk | None] = [None] * len(pending)
    for i, chunk in iter_vocoded(pending, batch, max_padding):
        chunks[i] = chunk
    return chunks


def iter_vocoded(
    pending: Sequence[PendingChunk], batch: bool = True, max_padding: float = 0.25
) -> Iterator[tuple[int, AudioChunk | None]]:
    """:func:`vocode_pending`, yielding ``(index, chunk)`` as soon as each generator call is
    done, so a caller can hand the first texts their audio while the others are still vocoded
    (with one call per text, the k-th of N waits for k calls, not N)."""
    ready = [(i, p.window) for i, p in enumerate(pending) if p.window is not None]
    if len({id(p.generator) for p in pending}) > 1:
        raise ValueError("chunks vocoded together must share one vocoder")
    for i, p in enumerate(pending):
        if p.window is None:
            yield i, p.complete(None)
    if batch:
        groups = group_windows([w.size for _, w in ready], max_padding)
    else:
        groups = [[k] for k in range(len(ready))]
    for group in groups:
        got = vocode_windows(pending[0].generator, [ready[k][1] for k in group])
        for k, wav in zip(group, got, strict=True):
            yield ready[k][0], pending[ready[k][0]].complete(wav)


def _fade_joins(
    samples: np.ndarray, start: int, n: int, fade_in: bool, fade_out: bool
) -> np.ndarray:
    """Ramp a segment's first ``n`` samples up and (when this is its last chunk) its last ``n``
    down, so segments joined end to end never click. ``start`` is the chunk's offset in its
    segment; the ramps are per sample, so chunked and whole-segment fading agree."""
    if not (fade_in and start < n) and not fade_out:
        return samples
    out = samples.copy()
    if fade_in and start < n:
        k = min(n - start, out.size)
        out[:k] *= np.arange(start, start + k, dtype=np.float32) / n
    if fade_out:
        k = min(n, out.size)
        out[out.size - k :] *= np.arange(k - 1, -1, -1, dtype=np.float32) / n
    return out


def _denoise(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Stationary spectral gating of one chunk; the STFT shrinks to fit short chunks."""
    import noisereduce  # imported lazily: it pulls scipy and is off by default

    n_fft = min(1024, 1 << (samples.size.bit_length() - 1))  # largest power of two that fits
    if n_fft < 64:  # too short to estimate a spectrum: leave it as it is
        return samples
    out: np.ndarray = noisereduce.reduce_noise(
        y=samples, sr=sample_rate, stationary=True, n_fft=n_fft
    )
    return out.astype(np.float32)
