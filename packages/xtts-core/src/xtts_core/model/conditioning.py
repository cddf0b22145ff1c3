"""Voice conditioning front end: log-mel frames -> 32 GPT prompt latents.

What it does: the conditioning encoder (1x1 conv + 6 attention blocks over time) and the perceiver
resampler that compresses any number of frames into a fixed 32 latents.

What it does not do: audio loading or the mel spectrogram (``xtts_core.audio``), chunking and
averaging over a long reference (``xtts_core.voice``).

Two XTTS quirks are kept on purpose because the released weights were trained with them: the
attention block's residual is added to the *normalised* input, and the perceiver's keys/values
include the latents themselves. Key names mirror coqui's (``gpt.conditioning_encoder.*``,
``gpt.conditioning_perceiver.*``).
"""

from __future__ import annotations

from xtts_core._extras import require_inference

require_inference("xtts_core.model.conditioning")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402


def _group_count(channels: int) -> int:
    """GroupNorm groups as tortoise's ``normalization()`` picks them (32, fewer for narrow models)."""
    groups = 32
    if channels <= 16:
        groups = 8
    elif channels <= 64:
        groups = 16
    while channels % groups != 0:
        groups //= 2
    return groups


class AttentionBlock(nn.Module):
    """Self-attention over time on (B, C, T) with tortoise's legacy head split."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(_group_count(channels), channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t = x.shape
        xn = self.norm(x.float()).to(x.dtype)  # GroupNorm in fp32, as the reference
        # legacy split: heads first, then q/k/v inside each head's 3*D channels
        qkv = self.qkv(xn).reshape(b * self.heads, -1, t)  # (B*H, 3*D, T)
        q, k, v = qkv.chunk(3, dim=1)  # each (B*H, D, T)
        scale = (c // self.heads) ** -0.25  # applied to q and k separately (fp16-friendly)
        w = torch.einsum("bct,bcs->bts", q * scale, k * scale)  # (B*H, T, T)
        w = torch.softmax(w.float(), dim=-1).to(w.dtype)
        h = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, t)  # (B, C, T)
        return xn + self.proj_out(h)  # residual on the normalised input (XTTS quirk)


class ConditioningEncoder(nn.Module):
    """``init`` 1x1 conv from mel bins to the model width, then six attention blocks."""

    def __init__(self, mel_bins: int, width: int, heads: int, blocks: int = 6) -> None:
        super().__init__()
        self.init = nn.Conv1d(mel_bins, width, kernel_size=1)
        self.attn = nn.Sequential(*(AttentionBlock(width, heads) for _ in range(blocks)))

    def forward(self, mel: Tensor) -> Tensor:
        """(B, mel_bins, T) -> (B, width, T)."""
        return self.attn(self.init(mel))


class CrossAttention(nn.Module):
    """Latents attend to ``[latents; context]``; no biases, no pre-norm."""

    def __init__(self, width: int, heads: int = 8, head_dim: int = 64) -> None:
        super().__init__()
        self.heads = heads
        inner = heads * head_dim
        self.to_q = nn.Linear(width, inner, bias=False)
        self.to_kv = nn.Linear(width, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, width, bias=False)

    def forward(self, latents: Tensor, context: Tensor) -> Tensor:
        b, n, _ = latents.shape
        ctx = torch.cat([latents, context], dim=1)  # (B, N + T, C)
        q = self.to_q(latents).view(b, n, self.heads, -1).transpose(1, 2)  # (B, H, N, D)
        k, v = self.to_kv(ctx).chunk(2, dim=-1)
        k = k.reshape(b, ctx.shape[1], self.heads, -1).transpose(1, 2)  # (B, H, N+T, D)
        v = v.reshape(b, ctx.shape[1], self.heads, -1).transpose(1, 2)  # (B, H, N+T, D)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(D)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class GEGLUFeedForward(nn.Sequential):
    """``Linear -> GEGLU (x * gelu(gate), exact GELU) -> Linear``; keys ``0`` and ``2``."""

    def __init__(self, width: int, mult: int = 4) -> None:
        inner = int(width * mult * 2 / 3)
        super().__init__(nn.Linear(width, 2 * inner), _GEGLU(), nn.Linear(inner, width))


class _GEGLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        x, gate = x.chunk(2, dim=-1)
        return x * F.gelu(gate)


class RMSNorm(nn.Module):
    """``normalize(x) * sqrt(C) * gamma``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.scale = width**0.5
        self.gamma = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class PerceiverResampler(nn.Module):
    """Compress (B, T, C) frames into (B, num_latents, C) with two cross-attention layers."""

    def __init__(self, width: int, num_latents: int = 32, depth: int = 2) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.zeros(num_latents, width))
        self.layers = nn.ModuleList(
            nn.ModuleList([CrossAttention(width), GEGLUFeedForward(width)]) for _ in range(depth)
        )
        self.norm = RMSNorm(width)

    def forward(self, context: Tensor) -> Tensor:
        x = self.latents.expand(context.shape[0], -1, -1)  # (B, N, C)
        for layer in self.layers:
            attn, ff = layer.children()  # [CrossAttention, GEGLUFeedForward]
            x = attn(x, context) + x
            x = ff(x) + x
        return self.norm(x)
