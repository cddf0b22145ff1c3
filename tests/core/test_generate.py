"""The decode loop: SamplingParams, the logits processors, and CodeStream on the tiny GPT."""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import pytest

torch = pytest.importorskip("torch")

from xtts_core.errors import ParameterError  # noqa: E402
from xtts_core.generate import CodeStream  # noqa: E402
from xtts_core.sampling import FAKE_PROMPT_ID, SamplingParams, process_logits, sample  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

if TYPE_CHECKING:
    from xtts_core.engine import XttsEngine
    from xtts_core.voice import Voice

INF = float("inf")
STOP = 3  # stop code of the hand-made 4- or 5-code vocabularies below


# --- SamplingParams ------------------------------------------------------------------------


def test_defaults_are_the_reference_inference_defaults() -> None:
    p = SamplingParams()
    assert (p.temperature, p.top_k, p.top_p, p.repetition_penalty) == (0.75, 50, 0.85, 10.0)
    assert (p.length_penalty, p.do_sample, p.seed) == (1.0, True, None)
    assert (p.min_new_codes, p.max_new_codes) == (0, None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0}, "temperature must be > 0"),
        ({"temperature": -1.0}, "temperature must be > 0"),
        ({"temperature": math.nan}, "temperature must be > 0"),
        ({"top_k": -1}, "top_k must be >= 0"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"repetition_penalty": 0.0}, "repetition_penalty must be > 0"),
        ({"repetition_penalty": -2.0}, "repetition_penalty must be > 0"),
        ({"min_new_codes": -1}, "min_new_codes must be >= 0"),
        ({"max_new_codes": 0}, "max_new_codes >= 1"),
    ],
)
def test_invalid_params_are_parameter_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match) as info:
        SamplingParams(**kwargs)
    assert isinstance(info.value, ValueError)


def test_edge_values_are_accepted_and_switch_their_processor_off() -> None:
    p = SamplingParams(top_k=0, top_p=1.0, repetition_penalty=1.0, min_new_codes=0, max_new_codes=1)
    assert (p.top_k, p.top_p, p.repetition_penalty) == (0, 1.0, 1.0)
    assert (p.min_new_codes, p.max_new_codes) == (0, 1)
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0, 1.5]])
    seen = torch.ones(1, 5, dtype=torch.bool)
    # only the temperature acts: no code is filtered by top-k or top-p, none penalised
    torch.testing.assert_close(process_logits(logits, seen, 0, p, STOP), logits / p.temperature)


# --- process_logits on hand-made tensors ---------------------------------------------------


def greedy(**kwargs: Any) -> SamplingParams:
    return SamplingParams(do_sample=False, **kwargs)


def probs_logits(*probs: float) -> torch.Tensor:
    return torch.tensor([probs]).log()


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_scores() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5, -1.0]])
    seen = torch.tensor([[True, True, False, False, False]])
    out = process_logits(logits, seen, 5, greedy(repetition_penalty=2.0), STOP)
    assert out.tolist() == [[1.0, -4.0, 1.0, 0.5, -1.0]]


def test_penalty_one_changes_nothing() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    seen = torch.ones(1, 4, dtype=torch.bool)
    out = process_logits(logits, seen, 5, greedy(repetition_penalty=1.0), STOP)
    assert out.tolist() == logits.tolist()


def test_min_new_codes_masks_the_stop_code_until_reached() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0, 9.0]])
    seen = torch.zeros(1, 4, dtype=torch.bool)
    params = greedy(repetition_penalty=1.0, min_new_codes=2)
    for n_new in (0, 1):
        out = process_logits(logits, seen, n_new, params, STOP)
        assert out[0, STOP] == -INF
        assert out[0, :STOP].tolist() == [0.0, 1.0, 2.0]
        assert sample(out, params, None).item() == 2
    out = process_logits(logits, seen, 2, params, STOP)
    assert out[0, STOP] == 9.0
    assert sample(out, params, None).item() == STOP


def test_process_logits_leaves_its_input_alone() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0, 9.0]])
    before = logits.clone()
    seen = torch.zeros(1, 4, dtype=torch.bool)
    process_logits(logits, seen, 0, greedy(repetition_penalty=1.0, min_new_codes=1), STOP)
    process_logits(logits, seen, 0, SamplingParams(repetition_penalty=1.0, min_new_codes=1), STOP)
    assert torch.equal(logits, before)


def test_temperature_divides_scores() -> None:
    logits = torch.tensor([[1.0, -2.0, 3.0, 0.0]])
    seen = torch.zeros(1, 4, dtype=torch.bool)
    params = SamplingParams(temperature=0.5, top_k=0, top_p=1.0, repetition_penalty=1.0)
    out = process_logits(logits, seen, 5, params, STOP)
    torch.testing.assert_close(out, logits / 0.5)


def test_greedy_skips_temperature_top_k_and_top_p() -> None:
    logits = torch.tensor([[1.0, -2.0, 3.0, 0.0]])
    seen = torch.zeros(1, 4, dtype=torch.bool)
    out = process_logits(logits, seen, 5, greedy(temperature=0.5, top_k=1, top_p=0.1), STOP)
    assert out.tolist() == logits.tolist()


@pytest.mark.parametrize(
    ("k", "kept"),
    [(1, {4}), (2, {2, 4}), (3, {0, 2, 4}), (5, {0, 1, 2, 3, 4}), (50, {0, 1, 2, 3, 4})],
)
def test_top_k_keeps_the_k_largest(k: int, kept: set[int]) -> None:
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.1, 3.0]])
    seen = torch.zeros(1, 5, dtype=torch.bool)
    params = SamplingParams(temperature=1.0, top_k=k, top_p=1.0, repetition_penalty=1.0)
    out = process_logits(logits, seen, 5, params, STOP)
    finite = {i for i, v in enumerate(out[0].tolist()) if v != -INF}
    assert finite == kept
    for i in kept:
        assert out[0, i] == logits[0, i]


@pytest.mark.parametrize(
    ("top_p", "kept"),
    [
        (0.4, {0}),  # 0.5 alone reaches 0.4
        (0.75, {0, 1}),  # 0.5 + 0.3 = 0.8 is the smallest set reaching 0.75
        (0.9, {0, 1, 2}),  # 0.95
        (0.99, {0, 1, 2, 3}),
        (1e-6, {0}),  # always at least the most likely code
    ],
)
def test_top_p_keeps_the_smallest_set_reaching_p(top_p: float, kept: set[int]) -> None:
    logits = probs_logits(0.5, 0.3, 0.15, 0.05)
    seen = torch.zeros(1, 4, dtype=torch.bool)
    params = SamplingParams(temperature=1.0, top_k=0, top_p=top_p, repetition_penalty=1.0)
    out = process_logits(logits, seen, 5, params, STOP)
    finite = {i for i, v in enumerate(out[0].tolist()) if v != -INF}
    assert finite == kept


def test_top_p_works_on_unsorted_rows_independently() -> None:
    logits = torch.cat([probs_logits(0.05, 0.5, 0.15, 0.3), probs_logits(0.3, 0.15, 0.05, 0.5)])
    seen = torch.zeros(2, 4, dtype=torch.bool)
    params = SamplingParams(temperature=1.0, top_k=0, top_p=0.75, repetition_penalty=1.0)
    out = process_logits(logits, seen, 5, params, STOP)
    assert (out[0] != -INF).tolist() == [False, True, False, True]
    assert (out[1] != -INF).tolist() == [True, False, False, True]


def test_processors_apply_in_the_reference_order() -> None:
    # penalty first: code 0 (seen, 4.0 -> 1.0) drops below code 1 (2.0), so top_k=1 keeps code 1
    logits = torch.tensor([[4.0, 2.0, 0.0, 0.0]])
    seen = torch.tensor([[True, False, False, False]])
    params = SamplingParams(temperature=0.5, top_k=1, top_p=1.0, repetition_penalty=4.0)
    out = process_logits(logits, seen, 5, params, STOP)
    assert out[0].tolist() == [-INF, 4.0, -INF, -INF]


def test_sample_is_reproducible_with_a_generator() -> None:
    scores = torch.zeros(1, 1000)
    params = SamplingParams()
    draws = [
        [int(sample(scores, params, g).item()) for _ in range(5)]
        for g in (torch.Generator().manual_seed(7), torch.Generator().manual_seed(7))
    ]
    assert draws[0] == draws[1]
    assert sample(scores.masked_fill(torch.arange(1000) != 42, -INF), params, None).item() == 42


# --- CodeStream on the tiny GPT --------------------------------------------------------------


def codes_of(engine: XttsEngine, voice: Voice, text: str, **kwargs: Any) -> list[int]:
    ids = engine.tokenizer.encode(text, "en")
    stream = CodeStream(engine.model.gpt, voice.gpt_cond_latent, ids, SamplingParams(**kwargs))
    out = [code for code, _ in stream]
    assert out == stream.codes
    return out


def test_forced_length_gives_exactly_that_many_codes(engine: XttsEngine, voice: Voice) -> None:
    ids = engine.tokenizer.encode("hello world", "en")
    params = SamplingParams(seed=1, min_new_codes=17, max_new_codes=17)
    stream = CodeStream(engine.model.gpt, voice.gpt_cond_latent, ids, params)
    pairs = list(stream)
    stop = engine.config.gpt.stop_audio_token
    assert len(pairs) == 17
    assert all(0 <= code < engine.config.gpt.num_audio_tokens for code, _ in pairs)
    assert stop not in [code for code, _ in pairs]  # min_new_codes masked it
    for _, latent in pairs:
        assert latent.shape == (engine.config.gpt.width,)
        assert latent.dtype == torch.float32
        assert torch.isfinite(latent).all()


def test_teacher_forcing_the_sampled_codes_gives_the_sampled_latents(
    engine: XttsEngine, voice: Voice
) -> None:
    ids = engine.tokenizer.encode("teacher forcing", "en")
    params = SamplingParams(seed=3, min_new_codes=9, max_new_codes=9)
    sampled = list(CodeStream(engine.model.gpt, voice.gpt_cond_latent, ids, params))
    fresh = CodeStream(engine.model.gpt, voice.gpt_cond_latent, ids, params)
    latents, logits = fresh.teacher_forced([code for code, _ in sampled])
    assert torch.equal(latents.float(), torch.stack([latent for _, latent in sampled]))
    assert logits.shape == (9, engine.config.gpt.num_audio_tokens)
    with pytest.raises(ParameterError, match="1 to 9 codes"):
        CodeStream(engine.model.gpt, voice.gpt_cond_latent, ids, params).teacher_forced([1] * 10)


def test_same_seed_same_codes_other_seed_other_codes(engine: XttsEngine, voice: Voice) -> None:
    kwargs = {"min_new_codes": 20, "max_new_codes": 20}
    first = codes_of(engine, voice, "same seed", seed=123, **kwargs)
    assert codes_of(engine, voice, "same seed", seed=123, **kwargs) == first
    # 20 draws from ~50 candidates each: a collision of all of them is practically impossible
    assert codes_of(engine, voice, "same seed", seed=124, **kwargs) != first


def test_seed_does_not_touch_the_global_rng(engine: XttsEngine, voice: Voice) -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    codes_of(engine, voice, "rng", seed=1, min_new_codes=4, max_new_codes=4)
    assert torch.equal(torch.rand(3), expected)


def test_greedy_ignores_the_seed(engine: XttsEngine, voice: Voice) -> None:
    kwargs = {"do_sample": False, "min_new_codes": 8, "max_new_codes": 8}
    assert codes_of(engine, voice, "greedy", seed=1, **kwargs) == codes_of(
        engine, voice, "greedy", seed=2, **kwargs
    )


def test_prompt_ids_count_as_seen(engine: XttsEngine, voice: Voice) -> None:
    ids = engine.tokenizer.encode("x", "en")
    stream = CodeStream(engine.model.gpt, voice.gpt_cond_latent, ids, SamplingParams())
    seen = set(stream.seen[0].nonzero().flatten().tolist())
    assert seen == {FAKE_PROMPT_ID, engine.config.gpt.start_audio_token}


def test_max_new_codes_is_capped_by_the_model(engine: XttsEngine, voice: Voice) -> None:
    ids = engine.tokenizer.encode("x", "en")
    gpt = engine.model.gpt
    assert (
        CodeStream(gpt, voice.gpt_cond_latent, ids, SamplingParams(max_new_codes=10**6)).max_new
        == 602
    )
    assert CodeStream(gpt, voice.gpt_cond_latent, ids, SamplingParams()).max_new == 602
    assert CodeStream(gpt, voice.gpt_cond_latent, ids, SamplingParams(max_new_codes=7)).max_new == 7


@pytest.fixture(scope="module")
def eager_to_stop(engine: XttsEngine) -> Any:
    """A copy of the tiny GPT whose head strongly prefers the stop code."""
    gpt = copy.deepcopy(engine.model.gpt)
    with torch.no_grad():
        gpt.mel_head.bias[engine.config.gpt.stop_audio_token] += 1000.0
    return gpt


@pytest.mark.parametrize("min_new", [0, 3])
def test_stop_code_is_yielded_and_ends_the_stream(
    engine: XttsEngine, voice: Voice, eager_to_stop: Any, min_new: int
) -> None:
    ids = engine.tokenizer.encode("stop", "en")
    params = SamplingParams(seed=0, min_new_codes=min_new, max_new_codes=30)
    stream = CodeStream(eager_to_stop, voice.gpt_cond_latent, ids, params)
    pairs = list(stream)
    stop = engine.config.gpt.stop_audio_token
    assert len(pairs) == min_new + 1
    assert pairs[-1][0] == stop
    assert stop not in [code for code, _ in pairs[:-1]]
    assert pairs[-1][1].shape == (engine.config.gpt.width,)


def test_interleaved_streams_equal_each_run_alone(engine: XttsEngine, voice: Voice) -> None:
    """Per-request state lives in the stream: two streams stepped in turn on one model."""
    other = engine.speaker("Other Speaker")
    gpt = engine.model.gpt
    jobs = [
        (voice, "the first sentence", SamplingParams(seed=1, min_new_codes=15, max_new_codes=15)),
        (other, "and another one", SamplingParams(seed=2, min_new_codes=12, max_new_codes=12)),
    ]

    def make(job: tuple[Voice, str, SamplingParams]) -> CodeStream:
        v, text, params = job
        return CodeStream(gpt, v.gpt_cond_latent, engine.tokenizer.encode(text, "en"), params)

    alone = [[(c, lat) for c, lat in make(job)] for job in jobs]

    iters = [iter(make(job)) for job in jobs]
    together: list[list[tuple[int, torch.Tensor]]] = [[], []]
    active = [0, 1]
    while active:
        for i in list(active):
            try:
                together[i].append(next(iters[i]))
            except StopIteration:
                active.remove(i)

    assert [len(a) for a in alone] == [15, 12]
    for a, b in zip(alone, together, strict=True):
        assert [c for c, _ in a] == [c for c, _ in b]
        for (_, la), (_, lb) in zip(a, b, strict=True):
            torch.testing.assert_close(la, lb, rtol=0, atol=0)
    assert [c for c, _ in alone[0]] != [c for c, _ in alone[1]]
