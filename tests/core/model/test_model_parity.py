"""Parity of our HiFi-GAN decoder and speaker encoder with coqui-tts's ``HifiDecoder``.

Runs only where coqui-tts imports (the reference venv); skipped elsewhere. Each test builds
coqui's module with a fixed seed, moves the weight-norm gains and BatchNorm statistics away from
their initial values (so folding and eval-mode BatchNorm are really exercised), folds weight norm
in its state_dict, loads that into ours with ``strict=True`` and compares fp32 outputs: max abs
error / max abs reference output <= 1e-4.

Run: ``PYTHONPATH=packages/xtts-core/src /work/scratch/ref/bin/python -m pytest
tests/core/model/test_model_parity.py -q -p no:cacheprovider``
"""

from __future__ import annotations

import pytest

pytest.importorskip("TTS")
torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from TTS.tts.layers.xtts.hifigan_decoder import HifiDecoder as CoquiHifiDecoder  # noqa: E402

from xtts_core.model.hifigan import HifiDecoder, HifiganConfig  # noqa: E402
from xtts_core.model.weight_norm import fold_weight_norm  # noqa: E402

pytestmark = pytest.mark.parity

TOLERANCE = 1e-4


def _rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape
    return float((ours - ref).abs().max() / ref.abs().max())


def _perturb(ref: nn.Module) -> None:
    """Give weight-norm gains and BatchNorm layers non-initial values, as training would."""
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("original0"):  # weight-norm g, initialised to ||v||
                p.mul_(torch.rand_like(p) + 0.5)
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)


def _pair(tiny: bool) -> tuple[CoquiHifiDecoder, HifiDecoder]:
    torch.manual_seed(0)
    if tiny:
        ref = CoquiHifiDecoder(decoder_input_dim=64, upsample_initial_channel_decoder=64)
        ours = HifiDecoder(
            decoder_input_dim=64, generator=HifiganConfig(upsample_initial_channel=64)
        )
    else:
        ref = CoquiHifiDecoder()  # XTTS-v2 sizes, as Xtts builds it from the released config
        ours = HifiDecoder()
    _perturb(ref)
    ref.eval()
    state = ref.state_dict()
    assert any(k.endswith("parametrizations.weight.original0") for k in state)
    ours.load_state_dict(fold_weight_norm(state), strict=True)
    return ref, ours.eval()


def _check_decoder(ref: CoquiHifiDecoder, ours: HifiDecoder, num_latents: int, batch: int) -> float:
    latents = torch.randn(batch, num_latents, ours.waveform_decoder.conv_pre.in_channels)
    g = nn.functional.normalize(torch.randn(batch, 512), dim=1).unsqueeze(-1)  # (B, 512, 1)
    with torch.no_grad():
        want = ref(latents, g=g)
        got = ours(latents, g)
    assert got.shape == (batch, 1, 256 * (4 * num_latents * 24000 // 22050))
    err = _rel_err(got, want)
    assert err <= TOLERANCE, err
    return err


@pytest.mark.parametrize("batch", [1, 2])
def test_decoder_tiny(batch: int) -> None:
    ref, ours = _pair(tiny=True)
    for T in (20, 37):
        _check_decoder(ref, ours, T, batch)


@pytest.mark.slow
def test_decoder_release_size() -> None:
    ref, ours = _pair(tiny=False)
    for T in (20, 37):
        _check_decoder(ref, ours, T, batch=1)


def test_speaker_encoder() -> None:
    ref, ours = _pair(tiny=True)
    torch.manual_seed(1)
    t = torch.arange(int(2.5 * 16000)) / 16000
    sine = 0.4 * torch.sin(2 * torch.pi * 180 * t) + 0.2 * torch.sin(2 * torch.pi * 1250 * t)
    noise = 0.1 * torch.randn(t.shape)
    for wav in (sine[None], noise[None], torch.stack([sine, noise]), torch.randn(1, 3 * 16000)):
        with torch.no_grad():
            want = ref.speaker_encoder(wav.clone(), l2_norm=True)
            got = ours.speaker_encoder(wav)
            want_raw = ref.speaker_encoder(wav.clone(), l2_norm=False)
            got_raw = ours.speaker_encoder(wav, l2_norm=False)
        assert _rel_err(got, want) <= TOLERANCE
        assert _rel_err(got_raw, want_raw) <= TOLERANCE
        # Xtts.get_speaker_embedding = forward(resampled 16 kHz audio, l2_norm=True).unsqueeze(-1)
        torch.testing.assert_close(ours.speaker_encoder.speaker_embedding(wav), got.unsqueeze(-1))
