"""ResNetSpeakerEncoder: key layout, buffers, shapes and pre-emphasis."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from xtts_core.model.speaker_encoder import PreEmphasis, ResNetSpeakerEncoder  # noqa: E402


@pytest.fixture(scope="module")
def encoder() -> ResNetSpeakerEncoder:
    torch.manual_seed(0)
    enc = ResNetSpeakerEncoder()
    with torch.no_grad():  # non-trivial BatchNorm statistics, as a trained checkpoint has
        for name, buf in enc.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0.0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return enc.eval()


def test_key_layout(encoder: ResNetSpeakerEncoder) -> None:
    sd = encoder.state_dict()
    assert len(sd) == 295  # as coqui's hifigan_decoder.speaker_encoder.*
    # coqui's speaker encoder: 8,028,492 parameters and 25,655 buffer elements
    assert sum(p.numel() for p in encoder.parameters()) == 8_028_492
    assert sum(b.numel() for b in encoder.buffers()) == 25_655
    assert sd["torch_spec.0.filter"].shape == (1, 1, 2)
    torch.testing.assert_close(sd["torch_spec.0.filter"].flatten(), torch.tensor([-0.97, 1.0]))
    torch.testing.assert_close(sd["torch_spec.1.spectrogram.window"], torch.hamming_window(400))
    assert sd["torch_spec.1.mel_scale.fb"].shape == (257, 64)
    for key in (
        "conv1.weight",
        "conv1.bias",
        "bn1.num_batches_tracked",
        "layer1.0.se.fc.0.weight",
        "layer1.2.se.fc.2.bias",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_var",
        "layer3.5.conv2.weight",
        "layer4.2.bn2.bias",
        "attention.0.weight",
        "attention.2.running_mean",
        "attention.3.bias",
        "fc.weight",
    ):
        assert key in sd, key
    assert "layer1.0.downsample.0.weight" not in sd  # stage 1 keeps 32 channels at stride 1
    assert sd["fc.weight"].shape == (512, 4096)
    assert sd["attention.0.weight"].shape == (128, 2048, 1)


def test_pre_emphasis() -> None:
    x = torch.randn(2, 50)
    y = PreEmphasis(0.97)(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y[:, 1:], x[:, 1:] - 0.97 * x[:, :-1])
    torch.testing.assert_close(y[:, 0], x[:, 0] - 0.97 * x[:, 1])  # reflect pad


def test_embedding_shape_and_norm(encoder: ResNetSpeakerEncoder) -> None:
    t = torch.arange(2 * 16000) / 16000
    wav = torch.stack([0.3 * torch.sin(2 * torch.pi * 220 * t), 0.1 * torch.randn(t.shape)])
    original = wav.clone()
    with torch.no_grad():
        emb = encoder(wav)
        raw = encoder(wav, l2_norm=False)
        col = encoder.speaker_embedding(wav)
        one = encoder(wav[1:])
        channel_axis = encoder(wav.unsqueeze(1))
    assert torch.equal(wav, original)  # coqui squeezes in place; we do not
    assert emb.shape == (2, 512)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(emb, raw / raw.norm(dim=1, keepdim=True))
    assert col.shape == (2, 512, 1)
    torch.testing.assert_close(col[..., 0], emb)
    torch.testing.assert_close(one, emb[1:], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(channel_axis, emb)


def test_sap_variant() -> None:
    enc = ResNetSpeakerEncoder(encoder_type="SAP").eval()
    assert enc.fc.in_features == 2048
    with torch.no_grad():
        assert enc(torch.randn(1, 8000)).shape == (1, 512)
    with pytest.raises(ValueError, match="encoder_type"):
        ResNetSpeakerEncoder(encoder_type="other")
