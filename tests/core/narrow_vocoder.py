"""The narrow HiFi-GAN the vocoder tests run without a checkpoint: release geometry (so the
release receptive field and sample mapping), 32 channels, random weights from a fixed seed."""

from __future__ import annotations

from xtts_core.model.hifigan import HifiDecoder, HifiganConfig

#: Latent width and speaker-embedding size of :func:`narrow_decoder`.
WIDTH, COND = 16, 8


def narrow_decoder(channels: int = 32) -> HifiDecoder:
    """A frozen, evaluating decoder (``torch.manual_seed`` first for fixed weights)."""
    decoder = HifiDecoder(
        decoder_input_dim=WIDTH, d_vector_dim=COND,
        generator=HifiganConfig(upsample_initial_channel=channels),
    )  # fmt: skip
    return decoder.eval().requires_grad_(False)
