"""Fold and unfold weight-norm parameters in a state_dict.

Coqui's HiFi-GAN stores its weight-normed convolutions (``ups.*``, ``resblocks.*``) in one of two
namings, both with ``w = g * v / ||v||`` and the norm taken over every dim except ``dim``
(PyTorch's default ``dim=0``, also for ``ConvTranspose1d``, so ``g`` of ``ups.i`` is
``(C_in, 1, 1)``):

- ``<p>.parametrizations.weight.original0`` (g) and ``<p>.parametrizations.weight.original1`` (v),
  written by ``torch.nn.utils.parametrizations.weight_norm`` (coqui-tts >= 0.20);
- ``<p>.weight_g`` (g) and ``<p>.weight_v`` (v), written by the legacy
  ``torch.nn.utils.weight_norm``.

Our modules are inference-only and hold a plain ``<p>.weight``. :func:`fold_weight_norm` rewrites
both namings into it; :func:`unfold_weight_norm` is the inverse used to write checkpoints in the
released layout. This module does not touch any other key and does not know which keys of a
model are weight-normed (see ``HifiganGenerator.weight_normed_keys``).
"""

from __future__ import annotations

# The imports below follow the require_inference guard on purpose.
# ruff: noqa: E402
from xtts_core._extras import require_inference

require_inference("xtts_core.model")

from collections.abc import Iterable, Mapping
from typing import Literal

import torch

__all__ = ["fold_weight_norm", "unfold_weight_norm"]

Naming = Literal["parametrizations", "legacy"]

_SUFFIXES: dict[str, tuple[str, str]] = {
    # naming -> (g suffix, v suffix); the folded key is "<p>.weight"
    "parametrizations": (
        ".parametrizations.weight.original0",
        ".parametrizations.weight.original1",
    ),
    "legacy": (".weight_g", ".weight_v"),
}


def _norm_dim(g: torch.Tensor, v: torch.Tensor) -> int | None:
    """The dim that ``g`` keeps (PyTorch's ``dim``); ``None`` means a norm over the whole tensor."""
    if g.dim() != v.dim():
        raise ValueError(f"weight-norm g {tuple(g.shape)} and v {tuple(v.shape)} differ in rank")
    kept = [d for d in range(v.dim()) if g.shape[d] != 1]
    if len(kept) > 1 or any(g.shape[d] != v.shape[d] for d in kept):
        raise ValueError(f"weight-norm g {tuple(g.shape)} does not fit v {tuple(v.shape)}")
    if kept:
        return kept[0]
    return 0 if v.shape[0] == 1 else None  # g of shape (1, 1, 1): dim 0 with one row, or dim=None


def _fold(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``g * v / ||v||`` computed in float64 and returned in ``v``'s dtype."""
    dim = _norm_dim(g, v)
    v64 = v.detach().to(torch.float64)
    norm: torch.Tensor
    if dim is None:
        norm = v64.norm()
    else:
        others = [d for d in range(v.dim()) if d != dim]
        norm = v64.norm(dim=others, keepdim=True) if others else v64.abs()
    return (v64 * (g.detach().to(torch.float64) / norm)).to(v.dtype)


def fold_weight_norm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return a new state_dict with every weight-norm pair folded into a plain ``<p>.weight``.

    Both namings are recognised. Keys that are not part of a weight-norm pair are passed through
    unchanged (same tensor objects) and keep their order; a folded weight takes the position of
    its ``g`` key.

    Raises:
        KeyError: a ``g`` key without its ``v`` (or the reverse), or a folded key that exists
            already.
    """
    out: dict[str, torch.Tensor] = {}
    consumed: set[str] = set()
    for key, tensor in state_dict.items():
        if key in consumed:
            continue
        for suffix_g, suffix_v in _SUFFIXES.values():
            if key.endswith(suffix_g) or key.endswith(suffix_v):
                stem = key[: -len(suffix_g)] if key.endswith(suffix_g) else key[: -len(suffix_v)]
                key_g, key_v, key_w = stem + suffix_g, stem + suffix_v, stem + ".weight"
                if key_g not in state_dict or key_v not in state_dict:
                    raise KeyError(f"weight-norm pair incomplete: need both {key_g} and {key_v}")
                if key_w in state_dict or key_w in out:
                    raise KeyError(f"{key_w} exists next to its weight-norm pair")
                out[key_w] = _fold(state_dict[key_g], state_dict[key_v])
                consumed.update((key_g, key_v))
                break
        else:
            out[key] = tensor
    return out


def unfold_weight_norm(
    state_dict: Mapping[str, torch.Tensor],
    keys: Iterable[str],
    naming: Naming = "parametrizations",
) -> dict[str, torch.Tensor]:
    """Return a new state_dict with each plain weight in ``keys`` split into a weight-norm pair.

    Writes ``g = ||w||`` (norm over all dims except 0, shape ``(w.shape[0], 1, ...)``) and
    ``v = w``, as PyTorch's ``weight_norm(dim=0)`` initialises them, so folding gives ``w`` back.

    Args:
        state_dict: a state_dict with plain ``<p>.weight`` keys.
        keys: the ``<p>.weight`` keys to unfold (every one must be present).
        naming: ``"parametrizations"`` (``original0``/``original1``, as coqui-tts >= 0.20 saves)
            or ``"legacy"`` (``weight_g``/``weight_v``).
    """
    if naming not in _SUFFIXES:
        raise ValueError(f"naming must be one of {sorted(_SUFFIXES)}, not {naming!r}")
    suffix_g, suffix_v = _SUFFIXES[naming]
    wanted = set(keys)
    missing = sorted(k for k in wanted if k not in state_dict or not k.endswith(".weight"))
    if missing:
        raise KeyError(f"not plain weights of this state_dict: {missing}")
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if key not in wanted:
            out[key] = tensor
            continue
        stem = key[: -len(".weight")]
        w = tensor.detach()
        others = list(range(1, w.dim()))
        g = w.to(torch.float64).norm(dim=others, keepdim=True) if others else w.abs()
        out[stem + suffix_g] = g.to(w.dtype)
        out[stem + suffix_v] = w.clone()
    return out
