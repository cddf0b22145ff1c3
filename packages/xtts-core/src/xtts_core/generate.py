"""The code decode loop: ``prefill``, ``decode_one_token``, ``sample`` and a per-stream state.

What it does: turns (voice latents, text ids) into audio codes and the latent of each code, one
step at a time, with the reference's sampling semantics so the same seed and weights give the
reference's codes: repetition penalty -> min-new-codes -> temperature -> top-k -> top-p ->
softmax -> multinomial. The repetition penalty also covers the reference's fake prompt ids (audio
code 1 and the start code), which it penalises from the first step.

What it does not do: vocoding or chunking (``stream.py``), text handling (``text/``).

All per-request state lives in :class:`CodeStream`; the model is only read. ``decode_one_token`` is
the step a later batched engine runs for many streams at once (it already takes a batch dimension).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from xtts_core._extras import require_inference

require_inference("xtts_core.generate")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.errors import ParameterError  # noqa: E402
from xtts_core.model.gpt import GPT, KVCache  # noqa: E402

#: Ids the reference's fake prompt holds (``1`` everywhere, then the start code); see module doc.
FAKE_PROMPT_ID = 1


@dataclass(frozen=True)
class SamplingParams:
    """How codes are drawn. Defaults are the reference ``inference()`` keyword defaults.

    ``length_penalty`` is accepted for API parity; like the reference (beam search only) it has no
    effect on sampling. ``min_new_codes``/``max_new_codes`` bound the sentence length (the cap is
    the model's ``max_new_codes`` when ``None``); ``seed`` makes sampling reproducible per stream.
    """

    temperature: float = 0.75
    top_k: int = 50
    top_p: float = 0.85
    repetition_penalty: float = 10.0
    length_penalty: float = 1.0
    do_sample: bool = True
    seed: int | None = None
    min_new_codes: int = 0
    max_new_codes: int | None = None

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ParameterError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ParameterError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ParameterError(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.repetition_penalty > 0:
            raise ParameterError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.min_new_codes < 0 or (self.max_new_codes is not None and self.max_new_codes < 1):
            raise ParameterError("min_new_codes must be >= 0 and max_new_codes >= 1")


def process_logits(
    logits: Tensor, seen: Tensor, n_new: int, params: SamplingParams, stop_code: int
) -> Tensor:
    """Apply the reference's logits processors to ``logits`` (B, V); ``seen`` (B, V) is bool."""
    scores = logits.to(torch.float32, copy=True)  # never write into the caller's logits
    if params.repetition_penalty != 1.0:
        p = params.repetition_penalty
        penalised = torch.where(scores < 0, scores * p, scores / p)
        scores = torch.where(seen, penalised, scores)
    if n_new < params.min_new_codes:
        scores[:, stop_code] = -float("inf")
    if not params.do_sample:
        return scores
    if params.temperature != 1.0:
        scores = scores / params.temperature
    if params.top_k > 0:
        k = min(params.top_k, scores.shape[-1])
        kth = torch.topk(scores, k).values[:, -1:]
        scores = scores.masked_fill(scores < kth, -float("inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative <= (1 - params.top_p)
        drop_sorted[:, -1:] = False  # always keep the most likely code
        drop = drop_sorted.scatter(1, order, drop_sorted)
        scores = scores.masked_fill(drop, -float("inf"))
    return scores


def sample(scores: Tensor, params: SamplingParams, generator: torch.Generator | None) -> Tensor:
    """Draw one code per row (B,) from processed scores; greedy when ``do_sample`` is off."""
    if not params.do_sample:
        return scores.argmax(dim=-1)
    probs = scores.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)


def prefill(
    model: GPT, cond_latents: Tensor, text_ids: Tensor, start_code: Tensor, cache: KVCache
) -> tuple[Tensor, Tensor]:
    """Run the prompt and the start code; returns (latents, logits) of the start position."""
    prefix = model.text_prefix(cond_latents, text_ids)  # (B, P, C)
    start = model.audio_embedding(start_code[:, None], 0)  # (B, 1, C)
    emb = torch.cat([prefix, start.to(prefix.dtype)], dim=1)
    return model(emb, cache, 0)


def decode_one_token(
    model: GPT, codes: Tensor, audio_pos: int, cache: KVCache, pos: int
) -> tuple[Tensor, Tensor]:
    """One step for codes (B,) at audio position ``audio_pos`` and sequence position ``pos``."""
    emb = model.audio_embedding(codes[:, None], audio_pos)  # (B, 1, C)
    return model(emb, cache, pos)


class CodeStream:
    """One sentence being decoded: owns its KV cache, history, RNG and position.

    Iterate it to get ``(code, latent)`` pairs, the latent being the vocoder input paired with the
    code (the hidden state of the position that produced it). The stop code is yielded with its
    latent, as the reference does, and ends the iteration.
    """

    def __init__(
        self, model: GPT, cond_latents: Tensor, text_ids: list[int], params: SamplingParams
    ) -> None:
        cfg = model.cfg
        device = model.mel_head.weight.device
        dtype = model.mel_head.weight.dtype
        self.model = model
        self.params = params
        self.stop_code = cfg.stop_audio_token
        self.max_new = min(params.max_new_codes or cfg.max_new_codes, cfg.max_new_codes)
        self.text_ids = torch.tensor([text_ids], dtype=torch.long, device=device)
        self.cond_latents = cond_latents.to(device=device, dtype=dtype)
        self.prefix_len = cond_latents.shape[1] + len(text_ids) + 2 + 1  # latents, text, start code
        self.cache = KVCache(
            cfg.layers,
            1,
            cfg.heads,
            self.prefix_len + self.max_new,
            cfg.width // cfg.heads,
            dtype,
            device,
        )
        self.seen = torch.zeros(1, cfg.num_audio_tokens, dtype=torch.bool, device=device)
        self.seen[:, [FAKE_PROMPT_ID, cfg.start_audio_token]] = True
        self.generator: torch.Generator | None = None
        if params.seed is not None:
            self.generator = torch.Generator(device=device).manual_seed(params.seed)
        self.codes: list[int] = []

    def _prefill(self) -> tuple[Tensor, Tensor]:
        start = torch.full(
            (1,), self.model.cfg.start_audio_token, dtype=torch.long, device=self.seen.device
        )
        return prefill(self.model, self.cond_latents, self.text_ids, start, self.cache)

    @torch.inference_mode()
    def teacher_forced(self, codes: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Latents ``(N, C)`` and next-code logits ``(N, V)`` along ``codes``, fed in place of
        sampled ones: row ``i``'s latent is the one the vocoder pairs with code ``i``, and its
        logits are what code ``i`` was drawn from.

        Why: comparing two precisions (or two checkpoints) on the same codes; sampling would
        diverge as soon as a logit moves. The steps are exactly the iteration's, on this
        stream's cache: call it on a fresh stream, instead of iterating.
        """
        if not 0 < len(codes) <= self.max_new:
            raise ParameterError(
                f"teacher forcing takes 1 to {self.max_new} codes, got {len(codes)}"
            )
        steps = [self._prefill()]
        device = self.seen.device
        for step, code in enumerate(codes[:-1]):
            fed = torch.tensor([code], dtype=torch.long, device=device)
            steps.append(
                decode_one_token(self.model, fed, step + 1, self.cache, self.prefix_len + step)
            )
        return torch.cat([lat for lat, _ in steps]), torch.cat([log for _, log in steps])

    @torch.inference_mode()
    def __iter__(self) -> Iterator[tuple[int, Tensor]]:
        model = self.model
        latents, logits = self._prefill()
        for step in range(self.max_new):
            scores = process_logits(logits, self.seen, step, self.params, self.stop_code)
            code = sample(scores, self.params, self.generator)
            value = int(code.item())
            self.codes.append(value)
            self.seen[0, value] = True
            yield value, latents[0].float()
            if value == self.stop_code or step + 1 == self.max_new:
                return
            latents, logits = decode_one_token(
                model, code, step + 1, self.cache, self.prefix_len + step
            )
