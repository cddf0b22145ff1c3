"""Incremental vocoding: latents arrive a few at a time, audio leaves as soon as it is final.

The reference re-runs HiFi-GAN over the whole sentence at every chunk (quadratic) and cross-fades
1024 samples to hide that the newest audio had no right context. Here each pull vocodes only a
window: the new frames, plus the generator's receptive field of left and right context. By
default only samples that no later latent can change are emitted (``HifiDecoder.stable_samples``),
so every emitted sample equals the one-shot decode of the whole sentence up to float rounding:
streaming has no seams. Setting ``lookahead_frames`` instead emits all but that many frames of
what the current latents determine; that lowers latency, and the last samples of each chunk are computed
without their full right context, and ``overlap`` samples are held back and cross-faded with their
recomputation at the next pull (the reference's linear fade).

Speed (``length_scale = 1 / speed``) interpolates the latents first, as the reference does.

A pull is two halves so many streams can share one generator call: :meth:`IncrementalVocoder.plan`
says which frames to vocode (a :class:`VocodeWindow`), :func:`vocode_windows` vocodes any number
of windows, from any streams and of any lengths, in one batched call (right-padded and masked,
exact), and :meth:`IncrementalVocoder.take` cuts the samples to emit from the window's wave.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from xtts_core._extras import require_inference

require_inference("xtts_core.stream")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.errors import ParameterError  # noqa: E402
from xtts_core.model.hifigan import HifiDecoder, HifiganGenerator  # noqa: E402


def speed_scale(speed: float) -> float:
    """The reference's ``length_scale``: 1 / max(speed, 0.05)."""
    if not speed > 0:
        raise ParameterError(f"speed must be > 0, got {speed}")
    return 1.0 / max(speed, 0.05)


def apply_speed(latents: Tensor, scale: float) -> Tensor:
    """Stretch latents (T, C) in time by ``scale`` with the reference's linear interpolation."""
    if scale == 1.0:
        return latents
    return F.interpolate(latents.T[None], scale_factor=scale, mode="linear")[0].T


@dataclass(frozen=True)
class VocodeWindow:
    """What one pull vocodes: generator input ``frames`` (1, C, n) with speaker embedding ``g``
    (1, cond, 1), and the global sample range the pull emits (``start`` to ``end``, then
    ``hold`` provisional samples) of a wave whose first sample is global sample ``base``."""

    frames: Tensor
    g: Tensor
    start: int
    end: int
    hold: int
    base: int

    @property
    def size(self) -> int:
        """Generator frames in the window (its cost)."""
        return self.frames.shape[-1]


def vocode_windows(generator: HifiganGenerator, windows: Sequence[VocodeWindow]) -> list[Tensor]:
    """Each window's wave (hop * size,), all from ONE generator call.

    Rows shorter than the longest are right-padded with zeros and masked
    (:meth:`HifiganGenerator.forward`'s ``lengths``), so each wave equals vocoding its window
    alone up to float rounding; windows of one size need no mask.
    """
    sizes = [w.size for w in windows]
    width = max(sizes)
    frames = torch.cat([F.pad(w.frames, (0, width - w.size)) for w in windows])  # (B, C, width)
    g = torch.cat([w.g for w in windows])  # (B, cond, 1)
    with torch.inference_mode():
        wav = generator(frames, g, None if min(sizes) == width else sizes)  # (B, 1, width * hop)
    hop = generator.hop_length
    return [wav[i, 0, : n * hop].float() for i, n in enumerate(sizes)]


def group_windows(sizes: Sequence[int], max_padding: float) -> list[list[int]]:
    """Split windows (given by their sizes) into batches that each pad at most ``max_padding``.

    A batch costs its row count times its longest row; it is worth forming while that stays
    within ``1 + max_padding`` times the frames it really vocodes. Greedy over the sizes
    from longest to shortest, so similar sizes share a call. Returns indices into ``sizes``.
    """
    groups: list[list[int]] = []
    total = 0
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        group = groups[-1] if groups else None
        if group is not None and (len(group) + 1) * sizes[group[0]] <= (1 + max_padding) * (
            total + sizes[i]
        ):
            group.append(i)
            total += sizes[i]
        else:
            groups.append([i])
            total = sizes[i]
    return groups


class IncrementalVocoder:
    """Turns a growing sequence of latents into final audio samples, window by window."""

    def __init__(
        self,
        decoder: HifiDecoder,
        speaker_embedding: Tensor,
        speed: float = 1.0,
        lookahead_frames: int | None = None,
        overlap_samples: int = 0,
    ) -> None:
        self.decoder = decoder
        self.g = speaker_embedding
        self.scale = speed_scale(speed)
        self.left, self.right = decoder.waveform_decoder.receptive_field()
        self.lookahead = lookahead_frames  # None: exact (emit only samples that are final)
        if (lookahead_frames is not None and lookahead_frames < 0) or overlap_samples < 0:
            raise ParameterError("lookahead_frames and overlap_samples must be >= 0")
        self.overlap = overlap_samples
        self.hop = decoder.hop_length
        self._latents: list[Tensor] = []
        self._emitted = 0  # output samples already returned (fade tail excluded)
        self._tail: Tensor | None = None  # provisional samples awaiting their cross-fade

    def push(self, latent: Tensor) -> None:
        """Add one latent (C,) or several (T, C)."""
        self._latents.append(latent.reshape(-1, latent.shape[-1]))

    @property
    def latent_count(self) -> int:
        return sum(t.shape[0] for t in self._latents)

    def pull(self, final: bool = False) -> Tensor:
        """Return the samples (1-D float32) that became ready; ``final`` flushes everything."""
        window = self.plan(final)
        if window is None:
            return torch.zeros(0)
        return self.take(window, vocode_windows(self.decoder.waveform_decoder, [window])[0])

    @torch.inference_mode()
    def plan(self, final: bool = False) -> VocodeWindow | None:
        """The window the next pull vocodes, or None when no sample is ready. Changes nothing:
        hand the window's wave to :meth:`take` before planning again."""
        if not self._latents or math.floor(self.latent_count * self.scale) == 0:
            return None  # nothing yet, or too few latents to stretch (speed > 1)
        raw = torch.cat(self._latents)  # (N, C)
        self._latents = [raw]
        lat = apply_speed(raw, self.scale)  # (N', C)
        total_frames = self.decoder.num_frames(lat.shape[0])
        if final:
            avail_frames = total_frames
            end = total_frames * self.hop
        else:
            stable_lat = (
                lat.shape[0] if self.scale == 1.0 else _stable_outputs(raw.shape[0], self.scale)
            )
            avail_frames = self._stable_frames(stable_lat, total_frames)
            if self.lookahead is None:
                end = self.decoder.stable_samples(stable_lat)
            else:
                end = max(0, avail_frames - self.lookahead) * self.hop
        hold = 0 if final else max(0, min(self.overlap, avail_frames * self.hop - end))
        start = self._emitted
        if end + hold <= start:
            return None
        w0 = max(0, start // self.hop - self.left)
        w1 = min(avail_frames, math.ceil((end + hold) / self.hop) + self.right)
        lo = self.decoder.source_latents(w0, w1)[0]
        frames = self.decoder.upsample_latents(lat[lo:][None], lo, w0, w1)  # (1, C, w1 - w0)
        return VocodeWindow(frames, self.g, start, end, hold, w0 * self.hop)

    @torch.inference_mode()
    def take(self, window: VocodeWindow, wav: Tensor) -> Tensor:
        """The samples to emit from the wave (hop * size,) of the window :meth:`plan` gave."""
        start, end, hold, base = window.start, window.end, window.hold, window.base
        out = wav[start - base : end - base].clone()
        if self._tail is not None:
            n = min(self._tail.shape[0], out.shape[0])
            fade = torch.linspace(0.0, 1.0, n)
            out[:n] = self._tail[:n] * (1 - fade) + out[:n] * fade
        self._tail = wav[end - base : end + hold - base].clone() if hold else None
        self._emitted = end
        return out

    def _stable_frames(self, stable_lat: int, total_frames: int) -> int:
        """Frames whose interpolation taps read only the first ``stable_lat`` (final) latents."""
        f = total_frames
        while f > 0 and self.decoder.source_latents(f - 1, f)[1] > stable_lat:
            f -= 1
        return f


def _stable_outputs(n_in: int, scale: float) -> int:
    """Outputs of a linear ``interpolate(scale_factor)`` whose right tap lies inside ``n_in - 1``."""
    # output j reads input floor(src) + 1 where src = (j + 0.5) / scale - 0.5; it is final once
    # that index exists, i.e. src < n_in - 1. Start just below the bound, step to it exactly.
    j = max(0, math.floor((n_in - 0.5) * scale - 0.5) - 1)
    while (j + 0.5) / scale - 0.5 < n_in - 1:
        j += 1
    return min(j, math.floor(n_in * scale))
