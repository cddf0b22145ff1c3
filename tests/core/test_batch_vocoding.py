"""Batched vocoding: chunks of many texts vocoded in one HiFi-GAN call sound as they do alone.

Runs a narrow HiFi-GAN (release geometry, 32 channels, random weights with non-zero biases, so
padding that leaked into a row would show) without a checkpoint. The scheduler-level check, with
a GPT in front, is in test_scheduler.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from narrow_vocoder import COND, WIDTH, narrow_decoder  # noqa: E402

from xtts_core.chunking import (  # noqa: E402
    AudioChunk,
    ChunkedSpeech,
    PendingChunk,
    StreamOptions,
    iter_vocoded,
    vocode_pending,
)
from xtts_core.model.hifigan import HifiDecoder  # noqa: E402
from xtts_core.stream import group_windows  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Batched rows differ from solo ones by the rounding of a different conv batch shape only.
TOL = 1e-5


@pytest.fixture(scope="module")
def decoder() -> HifiDecoder:
    torch.manual_seed(0)
    return narrow_decoder()


def embedding(seed: int) -> torch.Tensor:
    return torch.randn(1, COND, 1, generator=torch.Generator().manual_seed(seed))


def frames(n: int, seed: int) -> torch.Tensor:
    return torch.randn(1, WIDTH, n, generator=torch.Generator().manual_seed(seed))


def test_padded_rows_equal_their_solo_output(decoder: HifiDecoder) -> None:
    gen = decoder.waveform_decoder
    sizes = [9, 31, 20, 31]
    rows = [frames(n, seed) for seed, n in enumerate(sizes)]
    g = torch.cat([embedding(10 + i) for i in range(len(sizes))])
    with torch.inference_mode():
        solo = [gen(x, g[i : i + 1])[0, 0] for i, x in enumerate(rows)]
        padded = torch.cat([F.pad(x, (0, max(sizes) - x.shape[-1])) for x in rows])
        batched = gen(padded, g, sizes)
        unmasked = gen(padded, g)
    for i, n in enumerate(sizes):
        assert (batched[i, 0, : n * gen.hop_length] - solo[i]).abs().max() <= TOL
    # without the mask the padding leaks into the ends of the short rows: the mask is what works
    short = sizes[0] * gen.hop_length
    assert (unmasked[0, 0, :short] - solo[0]).abs().max() > 1e-3


def test_bad_lengths_are_refused(decoder: HifiDecoder) -> None:
    gen = decoder.waveform_decoder
    x = frames(8, 0).repeat(2, 1, 1)
    g = embedding(1).repeat(2, 1, 1)
    for lengths in ([8], [0, 8], [8, 9]):
        with pytest.raises(ValueError, match=r"lengths must give 1\.\.8 frames"):
            gen(x, g, lengths)


def test_group_windows_bounds_the_padding() -> None:
    assert group_windows([], 0.25) == []
    assert group_windows([10, 10, 10], 0.0) == [[0, 1, 2]]
    assert group_windows([10, 40, 11], 0.25) == [[1], [2, 0]]
    assert sorted(map(sorted, group_windows([5, 100, 7], math.inf))) == [[0, 1, 2]]
    sizes = [37, 113, 112, 60, 113, 40, 90]
    for limit in (0.0, 0.1, 0.5):
        groups = group_windows(sizes, limit)
        assert sorted(i for g in groups for i in g) == list(range(len(sizes)))
        for group in groups:
            longest = max(sizes[i] for i in group)
            assert len(group) * longest <= (1 + limit) * sum(sizes[i] for i in group)


@dataclass(frozen=True)
class Text:
    """One text of the simulated schedule: it joins at ``start`` and speaks ``segments``."""

    start: int
    segments: tuple[int, ...]  # codes per segment
    speed: float
    options: StreamOptions
    seed: int


TEXTS = [
    Text(0, (23,), 1.0, StreamOptions(), 1),
    Text(0, (9, 17), 1.3, StreamOptions(first_chunk_codes=3, chunk_codes=8), 2),
    Text(4, (30,), 0.8, StreamOptions(lookahead_frames=4, overlap_samples=200), 3),
    Text(11, (5, 5, 12), 1.0, StreamOptions(first_chunk_codes=2, chunk_codes=4), 4),
    Text(19, (14,), 2.0, StreamOptions(first_chunk_codes=1, chunk_codes=5), 5),
]


def speech(decoder: HifiDecoder, text: Text) -> ChunkedSpeech:
    return ChunkedSpeech(
        decoder, embedding(100 + text.seed), 24000, len(text.segments), text.speed, text.options
    )


def latents(text: Text) -> list[torch.Tensor]:
    rng = torch.Generator().manual_seed(text.seed)
    return [torch.randn(n, WIDTH, generator=rng) for n in text.segments]


def solo(decoder: HifiDecoder, text: Text) -> list[AudioChunk]:
    s = speech(decoder, text)
    out: list[AudioChunk | None] = []
    for seg in latents(text):
        s.begin_segment()
        out += [s.push(lat) for lat in seg]
        out.append(s.end_segment())
    return [c for c in out if c is not None]


def batched(
    decoder: HifiDecoder, batch: bool, max_padding: float
) -> tuple[list[list[AudioChunk]], list[list[int]]]:
    """Every text fed one latent per step as a scheduler does, chunks vocoded per step."""
    chunks: list[list[AudioChunk]] = [[] for _ in TEXTS]
    speeches = [speech(decoder, t) for t in TEXTS]
    todo = [latents(t) for t in TEXTS]
    place = [[0, 0] for _ in TEXTS]  # segment, code
    sizes_per_call: list[list[int]] = []

    def vocode(due: list[tuple[int, PendingChunk]]) -> None:
        sizes_per_call.append([p.window.size for _, p in due if p.window is not None])
        for (i, _), chunk in zip(
            due, vocode_pending([p for _, p in due], batch, max_padding), strict=True
        ):
            if chunk is not None:
                chunks[i].append(chunk)

    step = 0
    while any(seg < len(t.segments) for t, (seg, _) in zip(TEXTS, place, strict=True)):
        live = [i for i, t in enumerate(TEXTS) if t.start <= step and place[i][0] < len(todo[i])]
        due: list[tuple[int, PendingChunk]] = []
        for i in live:
            seg, code = place[i]
            if code == 0:
                speeches[i].begin_segment()
            pending = speeches[i].push_pending(todo[i][seg][code])
            place[i][1] += 1
            if pending is not None:
                due.append((i, pending))
        vocode(due)
        ended = [i for i in live if place[i][1] == len(todo[i][place[i][0]])]
        vocode([(i, speeches[i].end_pending()) for i in ended])
        for i in ended:
            place[i] = [place[i][0] + 1, 0]
        step += 1
    return chunks, sizes_per_call


@pytest.mark.parametrize(("batch", "max_padding"), [(True, math.inf), (True, 0.25), (False, 0)])
def test_texts_joining_and_leaving_sound_as_alone(
    decoder: HifiDecoder, batch: bool, max_padding: float
) -> None:
    got, sizes = batched(decoder, batch, max_padding)
    # windows of different sizes really were vocoded in the same step
    assert any(len(set(s)) > 1 for s in sizes)
    worst = 0.0
    for text, chunks in zip(TEXTS, got, strict=True):
        ref = solo(decoder, text)
        assert [c.samples.size for c in chunks] == [c.samples.size for c in ref]
        assert [(c.index, c.is_final, c.codes_so_far) for c in chunks] == [
            (c.index, c.is_final, c.codes_so_far) for c in ref
        ]
        for a, b in zip(chunks, ref, strict=True):
            if a.samples.size:
                worst = max(worst, float(abs(a.samples - b.samples).max()))
    assert worst <= TOL


def test_chunks_of_different_vocoders_are_not_mixed(decoder: HifiDecoder) -> None:
    torch.manual_seed(3)
    other = narrow_decoder(channels=16)
    pending = []
    for dec in (decoder, other):
        s = ChunkedSpeech(dec, embedding(1), 24000, 1, 1.0, StreamOptions(first_chunk_codes=1))
        s.begin_segment()
        pending.append(s.end_pending())
    with pytest.raises(ValueError, match="share one vocoder"):
        vocode_pending(pending)


@pytest.mark.parametrize("batch", [False, True], ids=["per-text", "batched"])
def test_each_chunk_comes_out_as_soon_as_its_call_is_done(
    decoder: HifiDecoder, batch: bool
) -> None:
    """A scheduler hands each text its chunk as soon as it is vocoded: with one call per text,
    the first text's audio must not wait for the other texts' calls. Windows of very different
    sizes make the batched grouping split them into separate calls too."""
    calls: list[int] = []
    hook = decoder.waveform_decoder.register_forward_hook(lambda *_: calls.append(1))
    whole = StreamOptions(first_chunk_codes=64, chunk_codes=64)  # one chunk: the segment's end
    pending = []
    for seed, codes in enumerate((2, 30, 3)):
        text = Text(0, (codes,), 1.0, whole, seed)
        s = speech(decoder, text)
        s.begin_segment()
        assert all(s.push_pending(latent) is None for latent in latents(text)[0])
        pending.append(s.end_pending())
    try:
        seen_at = [len(calls) for _ in iter_vocoded(pending, batch, max_padding=0.25)]
    finally:
        hook.remove()
    assert seen_at[0] == 1  # the first chunk was out after one generator call
    assert seen_at[-1] == len(calls) > 1
