"""One sentence inside a :class:`~xtts_core.batch.BatchDecoder`, and what a step gives of it.

:class:`BatchedStream` is the per-stream state of the one decode path: the prompt until it is
prefilled, the codes drawn, the repetition history, the RNG and the code limit, all set up here
once; the decoder drives it. :class:`StepOutput` is one code of one stream from a step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from xtts_core._extras import require_inference

require_inference("xtts_core.batch_stream")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.config import GPTConfig  # noqa: E402
from xtts_core.sampling import FAKE_PROMPT_ID, SamplingParams, code_limit, sample  # noqa: E402

__all__ = ["BatchedStream", "StepOutput"]


class BatchedStream:
    """One sentence inside a :class:`BatchDecoder`: a handle the decoder updates at each step.

    ``codes`` grows by one per step while the stream decodes; ``finished`` turns true when it
    yielded the stop code, reached its code limit, or was cancelled. ``seen`` (1, V) marks the
    codes the repetition penalty covers: the reference's fake prompt ids from the start, then
    every code drawn. With ``forced`` codes the stream is fed those instead of sampling, and
    takes exactly that many steps. The methods are the decoder's: they keep this stream's
    bookkeeping in one place.
    """

    def __init__(
        self, ident: int, row: int, prompt: Tensor, params: SamplingParams, cfg: GPTConfig,
        forced: Sequence[int] | None = None, cached: int = 0,
    ) -> None:  # fmt: skip
        device = prompt.device
        self.id = ident
        self.row = row
        self.params = params
        self.max_new = code_limit(params, cfg) if forced is None else len(forced)
        self.codes: list[int] = []
        self.finished = False
        self.prompt_len = prompt.shape[1]
        self.seen = torch.zeros(1, cfg.num_audio_tokens, dtype=torch.bool, device=device)
        self.seen[:, [FAKE_PROMPT_ID, cfg.start_audio_token]] = True
        self._prompt: Tensor | None = prompt  # (1, P, C) until prefilled
        self._prefilled = cached  # leading positions already in the cache (a voice's prefix)
        self._forced = None if forced is None else list(forced)
        self._generator: torch.Generator | None = None
        if params.seed is not None:
            self._generator = torch.Generator(device=device).manual_seed(params.seed)
        self._latents: Tensor | None = None  # (1, C) of the newest position, awaiting sampling
        self._logits: Tensor | None = None

    @property
    def prefilling(self) -> bool:
        """True until the whole prompt is in the cache (no code has been drawn yet)."""
        return self._prompt is not None

    @property
    def position(self) -> int:
        """Sequence position the code drawn last goes to (the prompt ends with the start code)."""
        return self.prompt_len + len(self.codes) - 1

    def prompt_chunk(self, budget: int) -> tuple[Tensor, int]:
        """The next at most ``budget`` prompt embeddings (1, n, C) and the position of the first."""
        assert self._prompt is not None
        start = self._prefilled
        return self._prompt[:, start : start + budget], start

    def prefilled(self, n: int, latents: Tensor, logits: Tensor) -> None:
        """``n`` more prompt positions are cached; after the last, ``latents``/``logits`` are the
        start code's and the stream can draw its first code."""
        self._prefilled += n
        if self._prefilled == self.prompt_len:
            self._prompt = None
            self.fed(latents, logits)

    def fed(self, latents: Tensor, logits: Tensor) -> None:
        """The forward of the newest position gave these (1, C) latents and (1, V) logits."""
        self._latents, self._logits = latents, logits

    def sampling_key(self) -> tuple[SamplingParams, bool]:
        """Streams with equal keys have their logits processed together: the same parameters
        (seed aside: each stream keeps its own generator) and the same min-length state."""
        params = dataclasses.replace(self.params, seed=None)
        return params, len(self.codes) < self.params.min_new_codes

    def pending(self) -> tuple[Tensor, Tensor]:
        """Logits (1, V) of the newest position and the codes seen so far (1, V), to process."""
        assert self._logits is not None
        return self._logits, self.seen

    @property
    def own_rng(self) -> bool:
        """True when this stream draws with its own seeded generator; the others (unseeded, or
        greedy) can draw together in one call without changing what a stream gets."""
        return self._generator is not None and self.params.do_sample

    def draw(self, scores: Tensor) -> Tensor:
        """Draw the next code (1,) from this stream's processed ``scores`` (1, V) with its own
        RNG."""
        return sample(scores, self.params, self._generator)

    def forced_code(self) -> Tensor | None:
        """The next code (1,) of a teacher-forced stream, on the device; None when it samples."""
        if self._forced is None:
            return None
        return torch.tensor(
            self._forced[len(self.codes) : len(self.codes) + 1], device=self.seen.device
        )

    def accept(self, value: int, stop_code: int) -> StepOutput:
        """Record the drawn code; the output carries the latent of the position that made it."""
        assert self._latents is not None and self._logits is not None
        self.codes.append(value)
        self.seen[0, value] = True
        stopped = value == stop_code and self._forced is None
        done = stopped or len(self.codes) == self.max_new
        return StepOutput(self, value, self._latents[0].float(), self._logits[0], done)

    def close(self) -> None:
        """Finished or cancelled: drop the tensors it holds."""
        self.finished = True
        self._prompt = self._latents = self._logits = None


@dataclass(frozen=True)
class StepOutput:
    """One code of one stream from a step, with the latent the vocoder needs for it and the raw
    logits (V,) it was drawn from (what a teacher-forced comparison reads)."""

    stream: BatchedStream
    code: int
    latent: Tensor  # (C,) float32
    logits: Tensor  # (V,) in the model's dtype
    finished: bool
