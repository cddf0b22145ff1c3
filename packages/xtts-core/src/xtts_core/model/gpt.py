"""The XTTS autoregressive GPT: a GPT-2 stack with XTTS's embeddings, position tables and heads.

What it does: maps a prefix of 32 conditioning latents plus ``[START] text [STOP]`` embeddings and
the audio codes generated so far to (a) the next-code logits and (b) the 1024-d "latent" that
drives the HiFi-GAN vocoder, reading and writing keys/values in a caller-owned
:class:`~xtts_core.kv_cache.KVCache` through its ``update`` method.

What it does not do: the cache itself (``kv_cache.py``), sampling, loops, streaming or
per-request bookkeeping (``sampling.py``, ``steps.py``, ``batch.py``).
Nothing here holds per-request state, so one loaded model serves many streams, each with its own
cache; every forward takes an explicit batch dimension so several streams can share one step.

Parameter names and layouts mirror coqui's state_dict under ``gpt.`` (HF GPT-2 naming and
``Conv1D`` (in, out) weights inside ``gpt.gpt``), so the GPT loads without any key mapping.
"""

from __future__ import annotations

from xtts_core._extras import require_inference

require_inference("xtts_core.model.gpt")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from xtts_core.config import GPTConfig  # noqa: E402
from xtts_core.kv_cache import CachePlace, Contiguous, KVCache  # noqa: E402
from xtts_core.model.conditioning import ConditioningEncoder, PerceiverResampler  # noqa: E402


class Conv1D(nn.Module):
    """GPT-2's dense layer: weight stored (in, out), applied with ``addmm``.

    Kept in the checkpoint's own layout rather than transposed into ``nn.Linear``: for the
    one-token decode step on CPU, ``addmm`` over (in, out) weights measured ~17% faster per code
    than ``F.linear`` over (out, in) ones (release size, 2-core AVX-512 CPU).
    """

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)  # (B*T, out)
        return y.view(*x.shape[:-1], -1)


class Attention(nn.Module):
    """Causal multi-head self-attention (HF GPT-2: fused qkv ``c_attn``, output ``c_proj``)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.c_attn = Conv1D(width, 3 * width)
        self.c_proj = Conv1D(width, width)

    def forward(self, x: Tensor, cache: KVCache, layer: int, place: CachePlace) -> Tensor:
        """Attend ``x`` (B, T, C) at the cache place ``place`` over everything cached before."""
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=-1)
        q = q.view(b, t, self.heads, -1).transpose(1, 2)  # (B, H, T, D)
        k = k.view(b, t, self.heads, -1).transpose(1, 2)  # (B, H, T, D)
        v = v.view(b, t, self.heads, -1).transpose(1, 2)  # (B, H, T, D)
        keys, values, mask = cache.update(layer, place, k, v)  # (B, H, S, D) each
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        y = y.transpose(1, 2).reshape(b, t, c)  # (B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    """GPT-2 feed-forward: 4x expansion with the tanh-approximated GELU (``gelu_new``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_fc = Conv1D(width, 4 * width)
        self.c_proj = Conv1D(4 * width, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-5, as GPT-2)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=1e-5)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width, eps=1e-5)
        self.mlp = MLP(width)

    def forward(self, x: Tensor, cache: KVCache, layer: int, place: CachePlace) -> Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer, place)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """The GPT-2 stack without token or position tables (XTTS supplies its own embeddings)."""

    def __init__(self, layers: int, width: int, heads: int) -> None:
        super().__init__()
        self.h = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width, eps=1e-5)

    def forward(self, x: Tensor, cache: KVCache, place: CachePlace) -> Tensor:
        for i, block in enumerate(self.h):
            x = block(x, cache, i, place)
        return self.ln_f(x)


class PositionTable(nn.Module):
    """A learned absolute position table (coqui's ``LearnedPositionEmbeddings``; key ``emb``)."""

    def __init__(self, rows: int, width: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(rows, width)

    def forward(self, positions: Tensor) -> Tensor:
        return self.emb(positions)


class GPT(nn.Module):
    """XTTS's GPT with its conditioning front end; key names follow coqui's ``gpt.`` prefix."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        if cfg.number_text_tokens is None:
            raise ValueError("GPTConfig.number_text_tokens must be set (it comes from vocab.json)")
        self.cfg = cfg
        self.conditioning_encoder = ConditioningEncoder(80, cfg.width, heads=cfg.heads)
        if cfg.use_perceiver_resampler:
            self.conditioning_perceiver = PerceiverResampler(
                cfg.width, cfg.num_conditioning_latents
            )
        self.text_embedding = nn.Embedding(cfg.number_text_tokens, cfg.width)
        self.mel_embedding = nn.Embedding(cfg.num_audio_tokens, cfg.width)
        self.gpt = Transformer(cfg.layers, cfg.width, cfg.heads)
        self.mel_pos_embedding = PositionTable(cfg.audio_positions, cfg.width)
        self.text_pos_embedding = PositionTable(cfg.text_positions, cfg.width)
        self.final_norm = nn.LayerNorm(cfg.width)
        self.mel_head = nn.Linear(cfg.width, cfg.num_audio_tokens)

    def conditioning_latents(self, log_mel: Tensor) -> Tensor:
        """Voice latents (B, 32, C) from a normalised log-mel chunk (B, 80, frames)."""
        h = self.conditioning_encoder(log_mel)  # (B, C, frames)
        return self.conditioning_perceiver(h.transpose(1, 2))  # (B, 32, C)

    def text_prefix(self, cond_latents: Tensor, text_ids: Tensor) -> Tensor:
        """Prompt embeddings (B, 32 + n + 2, C): latents, then ``[START] text [STOP]`` with positions.

        The latents carry no position embedding; the text positions start at 0 on ``[START]``.
        """
        start = text_ids.new_full((text_ids.shape[0], 1), self.cfg.start_text_token or 0)
        stop = text_ids.new_full((text_ids.shape[0], 1), self.cfg.stop_text_token or 0)
        ids = torch.cat([start, text_ids, stop], dim=1)  # (B, n + 2)
        positions = torch.arange(ids.shape[1], device=ids.device)
        emb = self.text_embedding(ids) + self.text_pos_embedding(positions)
        return torch.cat([cond_latents.to(emb.dtype), emb], dim=1)

    def audio_embedding(self, codes: Tensor, audio_start: int | Tensor) -> Tensor:
        """Embeddings (B, T, C) of audio codes (B, T) from audio position ``audio_start`` on.

        The start code sits at audio position 0, the first generated code at 1. A tensor
        ``audio_start`` (B,) gives each row its own position (a batched step, T == 1).
        """
        if isinstance(audio_start, Tensor):
            positions = audio_start[:, None]  # (B, 1)
        else:
            positions = torch.arange(audio_start, audio_start + codes.shape[1], device=codes.device)
        return self.mel_embedding(codes) + self.mel_pos_embedding(positions)

    def forward(
        self, emb: Tensor, cache: KVCache, place: int | CachePlace
    ) -> tuple[Tensor, Tensor]:
        """Run embeddings (B, T, C) at ``place``: an int ``start`` means sequence positions
        ``start .. start+T-1`` of cache rows ``0 .. B-1`` (one stream, or streams in lockstep).

        Returns ``(latents, logits)`` for the last position only: latents (B, C) are
        ``final_norm(ln_f(h))`` — what the vocoder consumes — and logits (B, num_audio_tokens).
        """
        if isinstance(place, int):
            place = Contiguous(slice(0, emb.shape[0]), place)
        h = self.gpt(emb, cache, place)[:, -1]  # (B, C) — only the newest position is needed
        latents = self.final_norm(h)
        return latents, self.mel_head(latents)
