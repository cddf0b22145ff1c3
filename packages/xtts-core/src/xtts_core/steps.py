"""The GPT's forward steps over a KV cache: the prompt, ``prefill`` and ``decode_one_token``.

What it does: builds a sentence's prompt embeddings (32 conditioning latents, ``[START] text
[STOP]``, the start code) and runs the two steps every decoder is made of, with gpt-fast's names:
``prefill`` writes prompt positions into the cache, ``decode_one_token`` feeds one code per row.
Both return the latents and logits of each row's newest position. The batched decoder, its
fixed-shape CUDA-graph step and the teacher-forced checks all call these, so a step is written
once.

What it does not do: sampling (``sampling.py``), per-stream bookkeeping (``batch.py``) or choosing
cache rows and positions (the caller passes a :data:`~xtts_core.kv_cache.CachePlace`).
"""

from __future__ import annotations

from xtts_core._extras import require_inference

require_inference("xtts_core.steps")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.kv_cache import CachePlace, KVCache  # noqa: E402
from xtts_core.model.gpt import GPT  # noqa: E402

__all__ = ["decode_one_token", "prefill", "prompt_embeddings", "prompt_positions"]


def prompt_positions(latents: int, text_ids: int) -> int:
    """Positions of a prompt: the latents, ``[START]``, the text, ``[STOP]`` and the start code."""
    return latents + text_ids + 3


def prompt_embeddings(model: GPT, cond_latents: Tensor, text_ids: Tensor) -> Tensor:
    """The prompt (B, P, C) of voice latents (B, L, C) and token ids (B, n), in the model's dtype,
    on its device; P is :func:`prompt_positions`."""
    weight = model.mel_head.weight
    ids = text_ids.to(weight.device)
    start = ids.new_full((ids.shape[0], 1), model.cfg.start_audio_token)
    prefix = model.text_prefix(cond_latents.to(weight.device, weight.dtype), ids)  # (B, L+n+2, C)
    return torch.cat([prefix, model.audio_embedding(start, 0).to(prefix.dtype)], dim=1)


def prefill(
    model: GPT, prompt: Tensor, cache: KVCache, place: int | CachePlace = 0
) -> tuple[Tensor, Tensor]:
    """Write prompt embeddings (B, T, C) at ``place`` (an int: positions ``place ..`` of rows
    ``0 .. B-1``); returns (latents, logits) of the last position, the start code's once the
    whole prompt is in."""
    out: tuple[Tensor, Tensor] = model(prompt, cache, place)
    return out


def decode_one_token(
    model: GPT, codes: Tensor, audio_pos: int | Tensor, cache: KVCache, place: int | CachePlace
) -> tuple[Tensor, Tensor]:
    """Feed codes (B,) at audio position ``audio_pos`` (an int, or one per row (B,)) to the cache
    at ``place`` (an int: that sequence position of rows ``0 .. B-1``)."""
    emb = model.audio_embedding(codes[:, None], audio_pos)  # (B, 1, C)
    out: tuple[Tensor, Tensor] = model(emb, cache, place)
    return out
