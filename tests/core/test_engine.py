"""XttsEngine: one-shot synthesis, streaming, chunking options, speed, denoise and bad input.

Most streaming cases run on ``engine_fast_vocoder`` (the tiny checkpoint with a narrow HiFi-GAN
of the release geometry, see conftest.py); one case runs the release-width vocoder of ``engine``.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from forced_codes import forced  # noqa: E402

from xtts_core.engine import AudioChunk, StreamOptions, Synthesis, XttsEngine  # noqa: E402
from xtts_core.errors import (  # noqa: E402
    ParameterError,
    TextError,
    TextTooLongError,
    UnsupportedLanguageError,
    XttsError,
)
from xtts_core.generate import SamplingParams  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

if TYPE_CHECKING:
    from xtts_core.voice import Voice

N = 20  # forced code count of the streaming cases
TOL = 1e-5
TEXT = "streaming equals one shot"


def samples_for(n_codes: int) -> int:
    """Output samples of ``n_codes`` latents at speed 1: 256 * floor(4 N * 24000 / 22050)."""
    return 256 * math.floor(4 * n_codes * 24000 / 22050)


_one_shot: dict[tuple[float, int], Synthesis] = {}


def one_shot(engine: XttsEngine, voice: Voice, speed: float, n: int = N) -> Synthesis:
    """``engine.synthesize`` of TEXT, memoised per (speed, n) for the module's many comparisons."""
    key = (speed, n)
    if key not in _one_shot:
        _one_shot[key] = engine.synthesize(TEXT, "en", voice, forced(n), speed=speed)
    return _one_shot[key]


def check_chunks(chunks: list[AudioChunk], n_codes: int, sample_rate: int) -> None:
    assert chunks, "a stream yields at least its final chunk"
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert [c.is_final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].codes_so_far == n_codes
    counts = [c.codes_so_far for c in chunks]
    assert counts == sorted(counts)
    times = [c.elapsed_s for c in chunks]
    assert times == sorted(times)
    for c in chunks[:-1]:
        assert c.samples.size > 0, "only the final chunk may be empty"
    for c in chunks:
        assert c.sample_rate == sample_rate
        assert c.samples.dtype == np.float32
        assert c.samples.ndim == 1


OPTIONS = {
    "first1-chunk3": StreamOptions(first_chunk_codes=1, chunk_codes=3),
    "default": StreamOptions(),
    "first2-chunk1": StreamOptions(first_chunk_codes=2, chunk_codes=1),
    "single-chunk": StreamOptions(first_chunk_codes=N, chunk_codes=N),
    "beyond-the-end": StreamOptions(first_chunk_codes=N + 5, chunk_codes=4),
}


@pytest.mark.parametrize("speed", [1.0, 1.5, 0.75])
@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_stream_equals_synthesize(
    engine_fast_vocoder: XttsEngine, voice: Voice, options: StreamOptions, speed: float
) -> None:
    engine = engine_fast_vocoder
    expected = one_shot(engine, voice, speed)
    chunks = list(engine.stream(TEXT, "en", voice, forced(N), speed=speed, options=options))

    check_chunks(chunks, N, engine.sample_rate)
    audio = np.concatenate([c.samples for c in chunks])
    assert audio.shape == expected.wav.shape
    assert float(np.abs(audio - expected.wav).max()) <= TOL
    if options.first_chunk_codes < N:
        assert chunks[0].codes_so_far < N, "the first audio must leave before the last code"


def test_chunk_boundaries_follow_the_options(engine_fast_vocoder: XttsEngine, voice: Voice) -> None:
    options = StreamOptions(first_chunk_codes=4, chunk_codes=5)
    chunks = list(engine_fast_vocoder.stream(TEXT, "en", voice, forced(N), options=options))
    # pulls happen at 4, 9, 14, 19 codes; a pull whose audio is not final yet yields nothing
    assert {c.codes_so_far for c in chunks[:-1]} <= {4, 9, 14, 19}
    assert len(chunks) >= 3


def test_chunks_grow_from_the_first_size_to_the_steady_size(
    engine_fast_vocoder: XttsEngine, voice: Voice
) -> None:
    options = StreamOptions(first_chunk_codes=2, chunk_codes=6)
    chunks = list(engine_fast_vocoder.stream(TEXT, "en", voice, forced(N), options=options))
    # sizes 2, 4, 6, 6, ...: pulls at 2, 6, 12, 18, 24; an empty pull yields nothing
    assert {c.codes_so_far for c in chunks[:-1]} <= {2, 6, 12, 18, 24}
    assert 12 in {c.codes_so_far for c in chunks}


def test_length_formula_at_speed_one(engine_fast_vocoder: XttsEngine, voice: Voice) -> None:
    out = one_shot(engine_fast_vocoder, voice, 1.0)
    assert len(out.codes) == N
    assert out.wav.shape == (samples_for(N),)
    assert out.latents.shape == (N, engine_fast_vocoder.config.gpt.width)
    assert out.sample_rate == engine_fast_vocoder.sample_rate == 24000


def test_faster_speech_is_shorter(engine_fast_vocoder: XttsEngine, voice: Voice) -> None:
    normal = one_shot(engine_fast_vocoder, voice, 1.0).wav.size
    assert one_shot(engine_fast_vocoder, voice, 1.5).wav.size < normal
    assert one_shot(engine_fast_vocoder, voice, 0.75).wav.size > normal
    # speed stretches the audio, not the codes
    assert (
        one_shot(engine_fast_vocoder, voice, 1.5).codes
        == one_shot(engine_fast_vocoder, voice, 1.0).codes
    )


def test_chunk_times_count_from_the_start_of_the_stream(
    engine_fast_vocoder: XttsEngine, voice: Voice
) -> None:
    options = StreamOptions(first_chunk_codes=1, chunk_codes=3)
    started = time.perf_counter()
    timed = []
    for chunk in engine_fast_vocoder.stream(TEXT, "en", voice, forced(N), options=options):
        timed.append((chunk, time.perf_counter() - started))
    assert len(timed) > 2
    for chunk, since_start in timed:  # each chunk's time lies within the caller's clock
        assert 0 < chunk.elapsed_s <= since_start
    assert timed[0][0].elapsed_s < timed[-1][0].elapsed_s


@pytest.mark.parametrize("speed", [1.0, 1.5])
def test_overlap_without_lookahead_keeps_the_length(
    engine_fast_vocoder: XttsEngine, voice: Voice, speed: float
) -> None:
    options = StreamOptions(
        first_chunk_codes=1, chunk_codes=3, lookahead_frames=0, overlap_samples=512
    )
    chunks = list(
        engine_fast_vocoder.stream(TEXT, "en", voice, forced(N), speed=speed, options=options)
    )
    check_chunks(chunks, N, engine_fast_vocoder.sample_rate)
    audio = np.concatenate([c.samples for c in chunks])
    assert audio.shape == one_shot(engine_fast_vocoder, voice, speed).wav.shape
    if speed == 1.0:
        assert audio.size == samples_for(N)
    assert np.isfinite(audio).all()


def test_stream_with_the_release_width_vocoder(engine: XttsEngine, voice: Voice) -> None:
    n = 8
    params = forced(n, seed=3)
    expected = engine.synthesize("real vocoder", "en", voice, params)
    options = StreamOptions(first_chunk_codes=1, chunk_codes=3)
    chunks = list(engine.stream("real vocoder", "en", voice, params, options=options))

    check_chunks(chunks, n, engine.sample_rate)
    audio = np.concatenate([c.samples for c in chunks])
    assert expected.wav.shape == audio.shape == (samples_for(n),)
    assert float(np.abs(audio - expected.wav).max()) <= TOL
    assert 0 < float(np.abs(expected.wav).max()) <= 1.0


def test_interleaved_streams_equal_each_alone(
    engine_fast_vocoder: XttsEngine, voice: Voice
) -> None:
    """The engine keeps no per-request state: two streams consumed in turn."""
    engine = engine_fast_vocoder
    other = engine.speaker("Other Speaker")
    options = StreamOptions(first_chunk_codes=1, chunk_codes=2)
    jobs = [
        (TEXT, voice, forced(N), 1.0),
        ("a second voice", other, forced(14, seed=9), 1.5),
    ]
    alone = [
        np.concatenate([c.samples for c in engine.stream(t, "en", v, p, speed=s, options=options)])
        for t, v, p, s in jobs
    ]
    gens = [engine.stream(t, "en", v, p, speed=s, options=options) for t, v, p, s in jobs]
    parts: list[list[np.ndarray]] = [[], []]
    active = [0, 1]
    while active:
        for i in list(active):
            chunk = next(gens[i], None)
            if chunk is None:
                active.remove(i)
            else:
                parts[i].append(chunk.samples)
    for a, p in zip(alone, parts, strict=True):
        np.testing.assert_array_equal(np.concatenate(p), a)


def test_denoise(engine_fast_vocoder: XttsEngine, voice: Voice) -> None:
    pytest.importorskip("noisereduce")
    engine = engine_fast_vocoder
    denoised = list(
        engine.stream(TEXT, "en", voice, forced(N), options=StreamOptions(denoise=True))
    )
    plain = list(engine.stream(TEXT, "en", voice, forced(N), options=StreamOptions()))
    check_chunks(denoised, N, engine.sample_rate)
    assert [c.samples.size for c in denoised] == [c.samples.size for c in plain]
    audio = np.concatenate([c.samples for c in denoised])
    assert audio.size == samples_for(N)
    assert np.isfinite(audio).all()
    assert not np.array_equal(audio, np.concatenate([c.samples for c in plain]))


def test_denoise_with_low_latency_chunks(engine_fast_vocoder: XttsEngine, voice: Voice) -> None:
    """The low-latency setting makes chunks shorter than noisereduce's 1024-sample STFT window
    (here a first chunk of 512 samples); denoising them must still work without warnings."""
    pytest.importorskip("noisereduce")
    engine = engine_fast_vocoder
    options = StreamOptions(first_chunk_codes=1, chunk_codes=3, denoise=True)
    chunks = list(engine.stream(TEXT, "en", voice, forced(N), options=options))
    check_chunks(chunks, N, engine.sample_rate)
    audio = np.concatenate([c.samples for c in chunks])
    assert audio.size == samples_for(N)
    assert np.isfinite(audio).all()


@pytest.fixture(scope="module")
def stops_at_once(engine_fast_vocoder: XttsEngine) -> XttsEngine:
    """The fast engine with a GPT head that always picks the stop code."""
    loaded = copy.copy(engine_fast_vocoder.checkpoint)
    loaded.model = copy.deepcopy(engine_fast_vocoder.model)
    with torch.no_grad():
        loaded.model.gpt.mel_head.bias[loaded.config.gpt.stop_audio_token] += 1000.0
    return XttsEngine(loaded)


@pytest.mark.parametrize("speed", [1.0, 1.5])
def test_sentence_that_stops_at_once(stops_at_once: XttsEngine, voice: Voice, speed: float) -> None:
    """One code (the stop code) is a valid outcome: both paths give the same (short) audio."""
    params = SamplingParams(seed=0)
    out = stops_at_once.synthesize("hm", "en", voice, params, speed=speed)
    assert out.codes == [stops_at_once.config.gpt.stop_audio_token]
    chunks = list(stops_at_once.stream("hm", "en", voice, params, speed=speed))
    check_chunks(chunks, 1, stops_at_once.sample_rate)
    audio = np.concatenate([c.samples for c in chunks])
    assert audio.shape == out.wav.shape
    np.testing.assert_allclose(audio, out.wav, rtol=0, atol=TOL)
    if speed == 1.0:
        assert out.wav.size == samples_for(1)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("speed", [0.0, -1.0, math.nan])
def test_bad_speed_is_a_parameter_error(engine: XttsEngine, voice: Voice, speed: float) -> None:
    with pytest.raises(ParameterError, match="speed must be > 0"):
        engine.synthesize(TEXT, "en", voice, forced(2), speed=speed)
    with pytest.raises(ParameterError, match="speed must be > 0"):
        list(engine.stream(TEXT, "en", voice, forced(2), speed=speed))


@pytest.mark.parametrize(
    "kwargs",
    [{"first_chunk_codes": 0}, {"chunk_codes": 0}, {"first_chunk_codes": -3, "chunk_codes": 5}],
)
def test_bad_chunk_sizes_are_parameter_errors(kwargs: dict[str, int]) -> None:
    with pytest.raises(ParameterError, match="must be >= 1"):
        StreamOptions(**kwargs)


def test_bad_overlap_is_a_parameter_error(engine: XttsEngine, voice: Voice) -> None:
    with pytest.raises(ParameterError, match="must be >= 0"):
        list(engine.stream(TEXT, "en", voice, forced(2), options=StreamOptions(overlap_samples=-1)))


def test_text_errors_surface_as_xtts_errors(engine: XttsEngine, voice: Voice) -> None:
    with pytest.raises(UnsupportedLanguageError, match="supported: ar, cs, de, en"):
        engine.synthesize(TEXT, "tlh", voice, forced(2))
    with pytest.raises(TextError, match="empty"):
        list(engine.stream("   ", "en", voice, forced(2)))
    with pytest.raises(TextTooLongError, match="fewer than 402"):
        engine.synthesize("x" * 500, "en", voice, forced(2), split_text=False)
    # split (the default), the same run is cut under the character limit and spoken
    assert len(engine.segments("x" * 500, "en")) == 2


def test_unknown_speaker(engine: XttsEngine) -> None:
    with pytest.raises(XttsError, match="unknown speaker 'nobody'"):
        engine.speaker("nobody")


def test_engine_properties(engine: XttsEngine) -> None:
    assert engine.sample_rate == 24000
    assert len(engine.languages) == 17
    assert "zh-cn" in engine.languages
    voice = engine.speaker("Other Speaker")
    assert voice.name == "Other Speaker"
    assert voice.gpt_cond_latent.shape == (1, 32, engine.config.gpt.width)
    assert voice.speaker_embedding.shape == (1, 512, 1)


def test_fine_tune_with_8194_audio_codes(tmp_path: Path) -> None:
    """Every audio-code id comes from config.json: an 8194-code fine-tune speaks end to end."""
    from xtts_core.random_checkpoint import write_random_checkpoint

    directory = write_random_checkpoint(tmp_path, "tiny", audio_tokens=8194)
    engine = XttsEngine.from_pretrained(directory, "cpu")
    gpt = engine.config.gpt
    assert (gpt.num_audio_tokens, gpt.start_audio_token, gpt.stop_audio_token) == (8194, 8192, 8193)
    voice = engine.speaker("Random Speaker")
    one = engine.synthesize(TEXT, "en", voice, forced(6))
    assert len(one.codes) == 6
    assert all(0 <= c < 8194 for c in one.codes)
    streamed = np.concatenate([c.samples for c in engine.stream(TEXT, "en", voice, forced(6))])
    assert float(np.abs(streamed - one.wav).max()) <= TOL


LONG_TEXT = " ".join(
    f"This is sentence number {w} of a long text that has to be split." for w in "abcdefgh"
)  # ~530 characters: over the English limit of 250


def test_long_text_is_spoken_as_segments_with_faded_joins(
    engine_fast_vocoder: XttsEngine, voice: Voice
) -> None:
    pieces = engine_fast_vocoder.segments(LONG_TEXT, "en")
    assert len(pieces) >= 3
    assert all(len(p) <= 250 for p in pieces)
    n = 6
    one = engine_fast_vocoder.synthesize(LONG_TEXT, "en", voice, forced(n))
    assert len(one.codes) == n * len(pieces)
    per_piece = samples_for(n)
    assert one.wav.shape == (per_piece * len(pieces),)
    for k in range(1, len(pieces)):  # every join ramps down to 0 and back up from 0
        assert one.wav[k * per_piece - 1] == 0.0
        assert one.wav[k * per_piece] == 0.0
    chunks = list(engine_fast_vocoder.stream(LONG_TEXT, "en", voice, forced(n)))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert [c.is_final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].codes_so_far == n * len(pieces)
    streamed = np.concatenate([c.samples for c in chunks])
    assert float(np.abs(streamed - one.wav).max()) <= TOL


def test_synthesize_reports_progress_per_code(
    engine_fast_vocoder: XttsEngine, voice: Voice
) -> None:
    calls: list[tuple[int, int, int]] = []
    n = 3
    one = engine_fast_vocoder.synthesize(
        LONG_TEXT, "en", voice, forced(n), on_code=lambda *args: calls.append(args)
    )
    segments = len(engine_fast_vocoder.segments(LONG_TEXT, "en"))
    assert calls == [(s, segments, c) for s in range(segments) for c in range(1, n + 1)]
    assert len(one.codes) == n * segments


def test_split_text_off_keeps_one_segment(engine_fast_vocoder: XttsEngine) -> None:
    over_limit = LONG_TEXT[:300]  # over 250 characters, under the 402-token limit
    assert engine_fast_vocoder.segments(over_limit, "en", split_text=False) == [over_limit]
    assert len(engine_fast_vocoder.segments(over_limit, "en")) == 2
    assert engine_fast_vocoder.segments("Short one.", "en") == ["Short one."]


def test_segment_errors_come_before_any_audio(
    engine_fast_vocoder: XttsEngine, voice: Voice
) -> None:
    with pytest.raises(UnsupportedLanguageError):
        engine_fast_vocoder.segments(LONG_TEXT, "xx")
    with pytest.raises(TextError):
        next(engine_fast_vocoder.stream("   ", "en", voice))
