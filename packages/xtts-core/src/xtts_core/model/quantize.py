"""int8 weight-only quantisation of the GPT's dense layers (a CPU speed mode).

Why: one decode step reads every GPT weight once, so on a CPU its time is the weight bytes over
memory bandwidth. Storing the 120 transformer matrices as int8 with one fp scale per output
channel (gpt-fast's "int8 weight-only") and multiplying with ``torch._weight_int8pack_mm`` in
bf16 measured 10.5 ms per token of matmuls against 68 ms in fp32 on a 2-core AVX-512 CPU.

What it does not do: quantise activations, the embeddings, the heads, the conditioning front end
or the vocoder (all stay in their float dtype). The audio difference against fp32 is measured in
the tests and the benchmark, not assumed.
"""

from __future__ import annotations

from xtts_core._extras import require_inference

require_inference("xtts_core.model.quantize")

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from xtts_core.model.gpt import Conv1D  # noqa: E402

#: Up to this many rows per call (a decode step of a few streams) use the packed int8 kernel.
PACKED_ROWS = 8


class Int8Conv1D(nn.Module):
    """A :class:`Conv1D` whose weight is int8 (out, in) with a per-output-channel scale."""

    def __init__(self, layer: Conv1D, act_dtype: torch.dtype) -> None:
        super().__init__()
        w = layer.weight.detach().float().t()  # (in, out) -> (out, in)
        scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)  # (out,)
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("weight", q.contiguous())
        self.register_buffer("scale", scale.to(act_dtype))
        self.register_buffer("bias", layer.bias.detach().to(act_dtype))
        self.weight: Tensor
        self.scale: Tensor
        self.bias: Tensor

    def forward(self, x: Tensor) -> Tensor:
        x2 = x.reshape(-1, x.shape[-1]).to(self.scale.dtype)  # (B*T, in)
        if x2.shape[0] > PACKED_ROWS:  # prefill: a dense matmul beats the row-wise int8 kernel
            w = self.weight.to(x2.dtype) * self.scale[:, None]  # (out, in)
            y = torch.addmm(self.bias, x2, w.t())
        else:  # decode: read int8 weights, a quarter of fp32's bytes
            y = torch._weight_int8pack_mm(x2, self.weight, self.scale) + self.bias  # (B*T, out)
        return y.view(*x.shape[:-1], -1)


def quantize_int8_(module: nn.Module, act_dtype: torch.dtype = torch.bfloat16) -> int:
    """Replace every :class:`Conv1D` under ``module`` in place; returns how many were replaced."""
    targets = [(name, child) for name, child in module.named_modules() if isinstance(child, Conv1D)]
    for name, child in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attr, Int8Conv1D(child, act_dtype))
    return len(targets)
