"""Continuous batching: a sentence decoded in a batch gives what it gives alone.

The reference for every stream is :class:`~xtts_core.generate.CodeStream` (one sentence, its own
cache), itself parity-tested against coqui-tts. Streams here join at different steps, have
different prompt lengths, code limits and sampling parameters, and some are cancelled.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import pytest

torch = pytest.importorskip("torch")

from forced_codes import forced  # noqa: E402

from xtts_core.batch import BatchDecoder, BatchedStream  # noqa: E402
from xtts_core.errors import CapacityError, ParameterError  # noqa: E402
from xtts_core.generate import CodeStream, SamplingParams  # noqa: E402

if TYPE_CHECKING:
    from xtts_core.engine import XttsEngine
    from xtts_core.voice import Voice

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SENTENCES = [
    ("Hello there, how are you?", SamplingParams(seed=1, max_new_codes=24)),
    ("A much longer sentence, so the prompt has many more positions than the others do.",
     SamplingParams(seed=2, max_new_codes=30, temperature=0.9, top_k=20)),
    ("Short.", SamplingParams(seed=3, max_new_codes=12, top_p=0.5, repetition_penalty=2.0)),
    ("Greedy one.", SamplingParams(do_sample=False, max_new_codes=16)),
]  # fmt: skip


def alone(
    engine: XttsEngine, voice: Voice, text: str, params: SamplingParams
) -> tuple[list[int], list[torch.Tensor]]:
    """Codes and latents of the sentence decoded on its own."""
    stream = CodeStream(
        engine.model.gpt, voice.gpt_cond_latent, engine.tokenizer.encode(text, "en"), params
    )
    pairs = list(stream)
    return [code for code, _ in pairs], [latent for _, latent in pairs]


def run(
    decoder: BatchDecoder, joins: dict[int, list[tuple[list[int], SamplingParams]]], voice: Voice
) -> tuple[list[BatchedStream], dict[int, list[torch.Tensor]]]:
    """Step until every stream is done; ``joins[step]`` are the sentences added before ``step``."""
    streams: list[BatchedStream] = []
    latents: dict[int, list[torch.Tensor]] = {}
    step = 0
    while step <= max(joins) or decoder.active:
        for ids, params in joins.get(step, []):
            streams.append(decoder.add(voice.gpt_cond_latent, ids, params))
        for out in decoder.step():
            latents.setdefault(out.stream.id, []).append(out.latent)
        step += 1
    return streams, latents


#: The dynamic step, and the fixed-shape one of decode_graphs.py; its spans of 16 positions make
#: the streams here cross several span buckets as they grow (and batch buckets as they come and go).
STEP_KINDS = pytest.mark.parametrize("graphs", [False, True], ids=["dynamic", "fixed-shape"])


@STEP_KINDS
def test_batched_streams_equal_their_solo_runs(
    engine: XttsEngine, voice: Voice, graphs: bool
) -> None:
    solo = [alone(engine, voice, text, params) for text, params in SENTENCES]
    encoded = [(engine.tokenizer.encode(t, "en"), p) for t, p in SENTENCES]
    decoder = BatchDecoder(
        engine.model.gpt, max_streams=4, prefill_chunk=16, decode_graphs=graphs, span_step=16
    )
    # two at once, one a few steps later, one after the first ones have finished
    streams, latents = run(decoder, {0: encoded[:2], 5: [encoded[2]], 40: [encoded[3]]}, voice)
    for (ref_codes, ref_latents), got in zip(solo, streams, strict=True):
        assert got.finished
        assert got.codes == ref_codes
        for a, b in zip(latents[got.id], ref_latents, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert decoder.free_slots == 4
    assert decoder.active == 0


def test_prefill_chunk_size_does_not_change_the_result(engine: XttsEngine, voice: Voice) -> None:
    text, params = SENTENCES[1]
    ids = engine.tokenizer.encode(text, "en")
    results = []
    for chunk in (1, 7, 1000):
        decoder = BatchDecoder(engine.model.gpt, max_streams=1, prefill_chunk=chunk)
        streams, _ = run(decoder, {0: [(ids, params)]}, voice)
        results.append(streams[0].codes)
    assert results[0] == results[1] == results[2]


def test_chunked_prefill_keeps_others_decoding(engine: XttsEngine, voice: Voice) -> None:
    decoder = BatchDecoder(engine.model.gpt, max_streams=2, prefill_chunk=8)
    # forced to 24 codes: it cannot stop while the long prompt prefills (about 10 steps)
    short = decoder.add(voice.gpt_cond_latent, engine.tokenizer.encode("Hi.", "en"), forced(24))
    while short.prefilling:
        decoder.step()
    long_ids = engine.tokenizer.encode(SENTENCES[1][0], "en")
    long = decoder.add(voice.gpt_cond_latent, long_ids, SENTENCES[1][1])
    steps_to_prefill = 0
    while long.prefilling:
        outputs = decoder.step()
        steps_to_prefill += 1
        assert [o.stream for o in outputs] == [short]  # one code of short per step
    # 32 latents + ids + [START] [STOP] + start code, 8 per step
    assert steps_to_prefill == -(-(32 + len(long_ids) + 3) // 8)


@STEP_KINDS
def test_cancel_frees_the_slot_and_spares_the_others(
    engine: XttsEngine, voice: Voice, graphs: bool
) -> None:
    text, params = SENTENCES[0]
    ids = engine.tokenizer.encode(text, "en")
    ref_codes, ref_latents = alone(engine, voice, text, params)
    decoder = BatchDecoder(
        engine.model.gpt, max_streams=3, prefill_chunk=64, decode_graphs=graphs, span_step=16
    )
    keep = decoder.add(voice.gpt_cond_latent, ids, params)
    victim = decoder.add(voice.gpt_cond_latent, ids, SamplingParams(seed=9, max_new_codes=30))
    third = decoder.add(voice.gpt_cond_latent, ids, params)
    latents: dict[int, list[torch.Tensor]] = {}
    for _ in range(6):
        for out in decoder.step():
            latents.setdefault(out.stream.id, []).append(out.latent)
    decoder.cancel(victim)
    assert victim.finished
    assert decoder.free_slots == 1
    decoder.cancel(victim)  # cancelling twice is harmless
    for _ in range(3):  # rows 0 and 2 decode: the non-consecutive (gathering) path
        for out in decoder.step():
            latents.setdefault(out.stream.id, []).append(out.latent)
    late = decoder.add(voice.gpt_cond_latent, ids, params)  # reuses the freed row
    assert late.row == victim.row
    while decoder.active:
        for out in decoder.step():
            latents.setdefault(out.stream.id, []).append(out.latent)
    for stream in (keep, third, late):
        assert stream.codes == ref_codes
        for a, b in zip(latents[stream.id], ref_latents, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert 0 < len(victim.codes) < 30


def test_cancel_while_prefilling(engine: XttsEngine, voice: Voice) -> None:
    decoder = BatchDecoder(engine.model.gpt, max_streams=1, prefill_chunk=4)
    stream = decoder.add(voice.gpt_cond_latent, [5, 6, 7], SamplingParams(seed=1))
    decoder.step()
    assert stream.prefilling
    decoder.cancel(stream)
    assert decoder.active == 0
    assert decoder.free_slots == 1
    assert decoder.step() == []


def test_full_decoder_refuses_with_a_capacity_error(engine: XttsEngine, voice: Voice) -> None:
    decoder = BatchDecoder(engine.model.gpt, max_streams=1)
    decoder.add(voice.gpt_cond_latent, [5, 6], SamplingParams(seed=1))
    with pytest.raises(CapacityError, match="all 1 stream slots are in use"):
        decoder.add(voice.gpt_cond_latent, [5, 6], SamplingParams(seed=1))


def test_bad_sizes(engine: XttsEngine, voice: Voice) -> None:
    with pytest.raises(ParameterError, match="at least 1"):
        BatchDecoder(engine.model.gpt, max_streams=0)
    decoder = BatchDecoder(engine.model.gpt, max_streams=1, max_positions=40)
    with pytest.raises(ParameterError, match="does not fit the 40 positions"):
        decoder.add(voice.gpt_cond_latent, [5, 6, 7], SamplingParams(max_new_codes=10))
    assert decoder.free_slots == 1  # nothing was taken


def test_streams_sampled_in_one_group_keep_their_own_rng(engine: XttsEngine, voice: Voice) -> None:
    text = "Same settings, different seeds."
    ids = engine.tokenizer.encode(text, "en")
    seeds = (11, 12, 13)
    params = [SamplingParams(seed=seed, max_new_codes=20) for seed in seeds]
    decoder = BatchDecoder(engine.model.gpt, max_streams=3)
    streams, _ = run(decoder, {0: [(ids, p) for p in params]}, voice)
    solo = [alone(engine, voice, text, p)[0] for p in params]
    assert [s.codes for s in streams] == solo
    assert len({tuple(codes) for codes in solo}) == 3  # the seeds do matter


@STEP_KINDS
def test_a_stream_that_stops_on_its_stop_code_hands_its_row_on(
    engine: XttsEngine, voice: Voice, graphs: bool
) -> None:
    """The forward of a step is queued before its codes are read, so a stream that has just
    drawn its stop code is fed once more: that must not disturb the stream that gets its row."""
    gpt = copy.deepcopy(engine.model.gpt)
    stop = gpt.cfg.stop_audio_token
    with torch.no_grad():
        gpt.mel_head.bias[stop] += 50.0  # the stop code wins as soon as min_new_codes allows
    ids = engine.tokenizer.encode("Hello there.", "en")
    stopping = SamplingParams(seed=5, min_new_codes=4)
    after = forced(12, seed=6)
    solo = CodeStream(gpt, voice.gpt_cond_latent, ids, after)
    want = [code for code, _ in solo]
    decoder = BatchDecoder(gpt, max_streams=2, prefill_chunk=64, decode_graphs=graphs, span_step=16)
    first = decoder.add(voice.gpt_cond_latent, ids, stopping)
    neighbour = decoder.add(voice.gpt_cond_latent, ids, after)
    while not first.finished:
        decoder.step()
    assert first.codes[-1] == stop and len(first.codes) == 5
    successor = decoder.add(voice.gpt_cond_latent, ids, after)
    assert successor.row == first.row
    while decoder.active:
        decoder.step()
    assert successor.codes == want
    assert neighbour.codes == want


def test_unseeded_streams_draw_together_and_each_gets_its_own_code(
    engine: XttsEngine, voice: Voice
) -> None:
    """Unseeded streams of a sampling group draw in one call. With top_k=1 a draw is certain
    whatever the RNG, so each must get exactly its solo codes: a mix-up of rows would show. A
    seeded stream of the same group still draws with its own generator."""
    texts = ["Hello there.", "A longer sentence than the first one is.", "Third."]
    unseeded = SamplingParams(top_k=1, max_new_codes=14)
    seeded = SamplingParams(seed=8, max_new_codes=14, top_k=1)
    plan = [(texts[0], unseeded), (texts[1], seeded), (texts[1], unseeded), (texts[2], unseeded)]
    solo = [alone(engine, voice, text, params)[0] for text, params in plan]
    decoder = BatchDecoder(engine.model.gpt, max_streams=4, prefill_chunk=256)
    streams, _ = run(decoder, {0: [(engine.tokenizer.encode(t, "en"), p) for t, p in plan]}, voice)
    assert [s.codes for s in streams] == solo
    assert len({tuple(codes) for codes in solo}) == 3  # the texts differ, so would their codes
