"""How the next code is drawn: the sampling parameters, the logits processors and the draw.

What it does: the reference's sampling semantics, so the same seed and weights give the
reference's codes: repetition penalty -> min-new-codes -> temperature -> top-k -> top-p ->
softmax -> multinomial. The repetition penalty also covers the reference's fake prompt ids (audio
code 1 and the start code), which it penalises from the first step. Every function takes a batch
of rows (B, V): the decoder processes the logits of streams that sample alike in one call.

What it does not do: the forward steps (``steps.py``) or any per-stream state (the decoder's
:class:`~xtts_core.batch.BatchedStream` holds each stream's history and RNG).
"""

from __future__ import annotations

from dataclasses import dataclass

from xtts_core._extras import require_inference

require_inference("xtts_core.sampling")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.config import GPTConfig  # noqa: E402
from xtts_core.errors import ParameterError  # noqa: E402

__all__ = ["FAKE_PROMPT_ID", "SamplingParams", "code_limit", "process_logits", "sample"]

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


def code_limit(params: SamplingParams, cfg: GPTConfig) -> int:
    """Codes a sentence may get: ``params.max_new_codes``, capped by the model's limit."""
    return min(params.max_new_codes or cfg.max_new_codes, cfg.max_new_codes)


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
