"""Band-limited resampling, numerically equal to ``torchaudio.functional.resample``.

XTTS resamples every reference clip twice (file rate -> 22050 Hz for the GPT conditioning, then
22050 -> 16000 Hz for the speaker encoder), and the reference does it with torchaudio's
windowed-sinc resampler at its defaults (``sinc_interp_hann``, ``lowpass_filter_width=6``,
``rolloff=0.99``). This module rebuilds that filter so voice latents match the reference without
depending on torchaudio at run time.

What it does: a polyphase FIR (one strided ``conv1d``) on the last dimension, with the kernel cached
per rate pair, dtype and device; :class:`StreamingResampler` applies the same filter to audio that
arrives in chunks, keeping the filter's history between them, so the chunks' outputs joined equal
one :func:`resample` call on the joined input. What it does not do: other window types or
fractional rates.
"""

from __future__ import annotations

# The imports below follow the require_inference guard on purpose.
# ruff: noqa: E402
from xtts_core._extras import require_inference

require_inference("xtts_core.audio")

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from xtts_core.errors import AudioError

__all__ = ["StreamingResampler", "resample"]

_ZERO_CROSSINGS = 6  # torchaudio's lowpass_filter_width
_ROLLOFF = 0.99  # cutoff as a fraction of the lower Nyquist frequency


@functools.lru_cache(maxsize=32)
def _cpu_kernel(orig: int, new: int, dtype: torch.dtype) -> tuple[Tensor, int]:
    """Build the polyphase sinc kernel on the CPU.

    Args:
        orig: Source rate divided by ``gcd(orig_sr, new_sr)``.
        new: Target rate divided by the same gcd.
        dtype: Dtype of the kernel; also the dtype of the intermediate maths, as in torchaudio
            (float32 and float64 only).

    Returns:
        The kernel of shape ``(new, 1, 2 * width + orig)`` and the one-sided ``width`` in samples.
    """
    cutoff = min(orig, new) * _ROLLOFF
    width = math.ceil(_ZERO_CROSSINGS * orig / cutoff)
    # Same operation order as torchaudio so float32 kernels agree bit for bit.
    taps = torch.arange(-width, width + orig, dtype=dtype)[None, None] / orig  # (1, 1, K)
    phases = torch.arange(0, -new, -1, dtype=dtype)[:, None, None] / new  # (new, 1, 1)
    t = (phases + taps) * cutoff  # (new, 1, K), in units of zero crossings
    t = t.clamp(-_ZERO_CROSSINGS, _ZERO_CROSSINGS)
    window = torch.cos(t * math.pi / _ZERO_CROSSINGS / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones((), dtype=dtype), t.sin() / t)
    return sinc * (window * (cutoff / orig)), width


@functools.lru_cache(maxsize=32)
def _kernel(orig: int, new: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, int]:
    """Return the cached kernel for ``(orig, new, dtype)`` moved to ``device``."""
    # Normal tensors even when first called under inference_mode, so later autograd use works.
    with torch.inference_mode(False):
        if dtype in (torch.float32, torch.float64):
            kernel, width = _cpu_kernel(orig, new, dtype)
        else:  # half precision: build in float32, then round once
            kernel, width = _cpu_kernel(orig, new, torch.float32)
        return kernel.to(device=device, dtype=dtype), width


def _check_rate(name: str, rate: int) -> int:
    """Return ``rate`` as an ``int``; raise :class:`AudioError` unless it is a positive integer."""
    if isinstance(rate, bool) or int(rate) != rate or rate <= 0:
        raise AudioError(f"{name} must be a positive integer number of Hz, got {rate!r}")
    return int(rate)


def resample(wav: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """Resample ``wav`` along its last dimension from ``orig_sr`` to ``new_sr`` Hz.

    Equal (to float rounding) to ``torchaudio.functional.resample(wav, orig_sr, new_sr)`` with its
    default arguments.

    Args:
        wav: Floating-point waveform of shape ``(..., T)``.
        orig_sr: Sample rate of ``wav`` in Hz.
        new_sr: Wanted sample rate in Hz.

    Returns:
        A tensor of shape ``(..., ceil(T * new_sr / orig_sr))`` with the dtype and device of
        ``wav``; ``wav`` itself when the rates are equal.

    Raises:
        AudioError: If a rate is not a positive integer.
        TypeError: If ``wav`` is not a floating-point tensor.
    """
    orig_sr = _check_rate("orig_sr", orig_sr)
    new_sr = _check_rate("new_sr", new_sr)
    if not wav.is_floating_point():
        raise TypeError(f"resample needs a floating-point waveform, got {wav.dtype}")
    if orig_sr == new_sr:
        return wav
    gcd = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // gcd, new_sr // gcd
    kernel, width = _kernel(orig, new, wav.dtype, wav.device)

    shape = wav.shape
    length = shape[-1]
    x = wav.reshape(math.prod(shape[:-1]), 1, length)  # (N, 1, T); explicit N allows T == 0
    x = F.pad(x, (width, width + orig))  # (N, 1, T + 2*width + orig)
    y = F.conv1d(x, kernel, stride=orig)  # (N, new, T // orig + 1): one row per output phase
    y = y.transpose(1, 2).reshape(x.shape[0], -1)  # (N, new * (T // orig + 1)), phases interleaved
    out_len = -(-length * new // orig)  # exact ceil(T * new / orig)
    return y[:, :out_len].reshape(*shape[:-1], out_len)  # (..., out_len)


class StreamingResampler:
    """:func:`resample` for a 1-D signal that arrives in chunks (e.g. streamed TTS audio).

    Resampling each chunk on its own zero-pads both of its edges, which puts a click at every join;
    this keeps the unconsumed input and emits each output sample once its whole filter window has
    arrived. ``push(a) + push(b) + ... + flush()`` equals ``resample(cat(a, b, ...))`` (to float
    rounding); ``flush`` zero-pads the end as :func:`resample` does and resets the state for the
    next signal. Holds back about ``width`` input samples (6 zero crossings of the lower rate:
    0.27 ms at 24 kHz -> 16 kHz). Not thread-safe; one instance per stream.
    """

    def __init__(self, orig_sr: int, new_sr: int) -> None:
        """Prepare to resample from ``orig_sr`` to ``new_sr`` Hz (float32, cpu).

        Raises:
            AudioError: a rate is not a positive integer.
        """
        self.orig_sr = _check_rate("orig_sr", orig_sr)
        self.new_sr = _check_rate("new_sr", new_sr)
        gcd = math.gcd(self.orig_sr, self.new_sr)
        self._orig, self._new = self.orig_sr // gcd, self.new_sr // gcd
        self._kernel, self._width = _kernel(
            self._orig, self._new, torch.float32, torch.device("cpu")
        )
        self._reset()

    def _reset(self) -> None:
        # Input not yet consumed, starting at the next block; begins with the left zero padding.
        self._pending = torch.zeros(self._width)
        self._received = 0  # input samples pushed since the last flush
        self._emitted = 0  # output samples returned since the last flush

    def push(self, samples: Tensor) -> Tensor:
        """Add a chunk (1-D float) and return the output samples it completes (possibly none)."""
        if samples.dim() != 1:
            raise AudioError(
                f"StreamingResampler takes 1-D chunks, got shape {tuple(samples.shape)}"
            )
        if self.orig_sr == self.new_sr:
            return samples
        self._pending = torch.cat([self._pending, samples.float().cpu()])
        self._received += samples.shape[0]
        return self._run(self._pending)

    def flush(self) -> Tensor:
        """Return the rest of the signal (the end zero-padded as :func:`resample` does) and reset."""
        if self.orig_sr == self.new_sr:
            return torch.zeros(0)
        left = (
            -(-self._received * self._new // self._orig) - self._emitted
        )  # of ceil(T * new / orig)
        padded = torch.cat([self._pending, torch.zeros(self._width + self._orig)])
        out = self._run(padded)[: max(left, 0)]
        self._reset()
        return out

    def _run(self, x: Tensor) -> Tensor:
        """Emit every block whose window lies inside ``x``; keep the input from the next block on."""
        size = self._kernel.shape[-1]  # 2 * width + orig
        blocks = (x.shape[0] - size) // self._orig + 1 if x.shape[0] >= size else 0
        if blocks == 0:
            return torch.zeros(0)
        used = x[: (blocks - 1) * self._orig + size]
        y = F.conv1d(used[None, None], self._kernel, stride=self._orig)  # (1, new, blocks)
        out = y[0].transpose(0, 1).reshape(-1)  # (blocks * new,), phases interleaved
        self._pending = x[blocks * self._orig :]
        self._emitted += out.shape[0]
        return out
