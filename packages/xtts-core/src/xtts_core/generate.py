"""One sentence decoded on its own: :class:`CodeStream`, a batch of one.

What it does: turns (voice latents, text ids) into audio codes and the latent of each code, one
step at a time, for callers that speak one sentence at a time (``XttsEngine.stream`` and
``synthesize``, ``xtts synth``, ``xtts bench``, the benchmarks). It runs the server's decoder,
a :class:`~xtts_core.batch.BatchDecoder` of one slot whose cache is sized to this sentence and
which prefills the whole prompt in one forward, so the single-stream path and the batched one
are the same code: sampling (``sampling.py``), the steps (``steps.py``) and the per-stream set-up
(prompt, repetition history, RNG, code limit) are written once.

What it does not do: vocoding or chunking (``stream.py``, ``chunking.py``), text handling
(``text/``). All per-request state lives in the stream; the model is only read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from xtts_core._extras import require_inference

require_inference("xtts_core.generate")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.batch import BatchDecoder, StepOutput  # noqa: E402
from xtts_core.kv_cache import PrefixCache  # noqa: E402
from xtts_core.model.gpt import GPT  # noqa: E402
from xtts_core.sampling import SamplingParams, code_limit  # noqa: E402
from xtts_core.steps import prompt_positions  # noqa: E402

__all__ = ["CodeStream", "SamplingParams"]


class CodeStream:
    """One sentence being decoded: owns its decoder (cache, history, RNG and position).

    Iterate it to get ``(code, latent)`` pairs, the latent being the vocoder input paired with the
    code (the hidden state of the position that produced it). The stop code is yielded with its
    latent, as the reference does, and ends the iteration. Iterate it, or teacher-force it, once.
    ``prefix_cache`` outlives the stream: the next sentence of the same voice reuses the keys and
    values of its conditioning latents (see :class:`~xtts_core.kv_cache.PrefixCache`).
    """

    def __init__(
        self, model: GPT, cond_latents: Tensor, text_ids: list[int], params: SamplingParams,
        prefix_cache: PrefixCache | None = None,
    ) -> None:  # fmt: skip
        self.max_new = code_limit(params, model.cfg)
        prompt = prompt_positions(cond_latents.shape[1], len(text_ids))
        self._decoder = BatchDecoder(
            model, max_streams=1, prefill_chunk=prompt, max_positions=prompt + self.max_new - 1,
            prefix_cache=prefix_cache,
        )  # fmt: skip
        self._args = (cond_latents, text_ids, params)
        self.stream = self._decoder.add(*self._args)

    @property
    def codes(self) -> list[int]:
        """The codes drawn so far."""
        return self.stream.codes

    @property
    def seen(self) -> Tensor:
        """(1, V) the codes the repetition penalty covers (see :class:`~xtts_core.batch.BatchedStream`)."""
        return self.stream.seen

    @torch.inference_mode()
    def teacher_forced(self, codes: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Latents ``(N, C)`` and next-code logits ``(N, V)`` along ``codes``, fed in place of
        sampled ones: row ``i``'s latent is the one the vocoder pairs with code ``i``, and its
        logits are what code ``i`` was drawn from.

        Why: comparing two precisions (or two checkpoints) on the same codes; sampling would
        diverge as soon as a logit moves. The steps are exactly the iteration's: call it on a
        fresh stream, instead of iterating.
        """
        self._decoder.cancel(self.stream)
        self.stream = self._decoder.add(*self._args, forced=codes)
        outputs = list(self._run())
        latents = torch.stack([out.latent for out in outputs])
        return latents, torch.stack([out.logits for out in outputs])

    def __iter__(self) -> Iterator[tuple[int, Tensor]]:
        for out in self._run():
            yield out.code, out.latent

    def _run(self) -> Iterator[StepOutput]:
        while not self.stream.finished:
            yield from self._decoder.step()
