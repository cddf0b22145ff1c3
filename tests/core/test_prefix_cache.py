"""The voice prefix cache: a sentence of a known voice skips prefilling its conditioning latents
and decodes exactly what it decodes without the cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

torch = pytest.importorskip("torch")

from forced_codes import forced  # noqa: E402

from xtts_core.batch import BatchDecoder, BatchedStream  # noqa: E402
from xtts_core.errors import ParameterError  # noqa: E402
from xtts_core.kv_cache import PrefixCache  # noqa: E402

if TYPE_CHECKING:
    from xtts_core.engine import XttsEngine
    from xtts_core.voice import Voice

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHUNK = 8  # prefill positions per step; 32 latents are 4 whole chunks


def decode(
    decoder: BatchDecoder, voice: Voice, ids: list[int], n: int = 10
) -> tuple[BatchedStream, int, list[torch.Tensor]]:
    """The finished stream, the steps its prefill took, and its latents."""
    stream = decoder.add(voice.gpt_cond_latent, ids, forced(n, seed=4))
    prefill_steps, latents = 0, []
    while stream.prefilling:
        decoder.step()
        prefill_steps += 1
    while not stream.finished:
        latents += [out.latent for out in decoder.step()]
    return stream, prefill_steps, latents


def test_a_known_voice_prefills_only_its_text_and_decodes_the_same(
    engine: XttsEngine, voice: Voice
) -> None:
    gpt = engine.model.gpt
    first = engine.tokenizer.encode("The first sentence of a voice.", "en")
    second = engine.tokenizer.encode("And its second one.", "en")
    cache = PrefixCache()
    cached = BatchDecoder(gpt, 1, prefill_chunk=CHUNK, prefix_cache=cache)
    plain = BatchDecoder(gpt, 1, prefill_chunk=CHUNK)

    _, steps, _ = decode(cached, voice, first)
    assert steps == -(-(32 + len(first) + 3) // CHUNK)  # a miss prefills everything
    assert len(cache) == 1
    got, steps, latents = decode(cached, voice, second)
    assert steps == -(-(len(second) + 3) // CHUNK)  # a hit: text and start code only
    want, _, want_latents = decode(plain, voice, second)
    assert got.codes == want.codes
    for a, b in zip(latents, want_latents, strict=True):
        assert torch.equal(a, b)


def test_another_voice_misses_and_the_oldest_voice_is_dropped(engine: XttsEngine) -> None:
    gpt = engine.model.gpt
    ids = engine.tokenizer.encode("Two voices.", "en")
    voices = [engine.speaker("Random Speaker"), engine.speaker("Other Speaker")]
    cache = PrefixCache(voices=1)
    cached = BatchDecoder(gpt, 1, prefill_chunk=CHUNK, prefix_cache=cache)
    plain = BatchDecoder(gpt, 1, prefill_chunk=CHUNK)
    decode(cached, voices[0], ids)
    key = [PrefixCache.key(v.gpt_cond_latent) for v in voices]
    assert cache.get(key[0]) is not None
    got, steps, latents = decode(cached, voices[1], ids)
    assert steps == -(-(32 + len(ids) + 3) // CHUNK)  # not the first voice's prefix
    want, _, want_latents = decode(plain, voices[1], ids)
    assert got.codes == want.codes
    assert all(torch.equal(a, b) for a, b in zip(latents, want_latents, strict=True))
    assert len(cache) == 1
    assert cache.get(key[0]) is None
    assert cache.get(key[1]) is not None


def test_the_key_follows_the_values_not_the_object(voice: Voice) -> None:
    latents = voice.gpt_cond_latent
    assert PrefixCache.key(latents.clone()) == PrefixCache.key(latents)
    moved = latents.clone()
    moved[0, 0, 0] += 1e-3
    assert PrefixCache.key(moved) != PrefixCache.key(latents)
    with pytest.raises(ParameterError, match="at least 1 voice"):
        PrefixCache(voices=0)


def test_the_engine_reuses_a_voice_across_segments(engine: XttsEngine, voice: Voice) -> None:
    """The engine's one-stream path shares one cache: the second synthesis hits it and gives
    the same codes and latents as the first (which filled it)."""
    engine.prefix_cache = PrefixCache()
    try:
        first = engine.synthesize("Cached voice.", "en", voice, forced(8))
        assert len(engine.prefix_cache) == 1
        second = engine.synthesize("Cached voice.", "en", voice, forced(8))
    finally:
        engine.prefix_cache = PrefixCache()
    assert second.codes == first.codes
    torch.testing.assert_close(second.latents, first.latents, rtol=1e-5, atol=1e-6)
