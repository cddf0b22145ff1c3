"""HifiDecoder / HifiganGenerator: key layout, output lengths, sample mapping, receptive field."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from xtts_core.model.hifigan import HifiDecoder, HifiganConfig, HifiganGenerator  # noqa: E402
from xtts_core.model.weight_norm import fold_weight_norm, unfold_weight_norm  # noqa: E402

# Release geometry (kernels, strides, dilations) with few channels: fast, same receptive field.
TINY = HifiganConfig(upsample_initial_channel=32)


def _tiny_decoder(dtype: torch.dtype = torch.float32) -> HifiDecoder:
    torch.manual_seed(0)
    dec = HifiDecoder(decoder_input_dim=16, d_vector_dim=8, generator=TINY)
    return dec.to(dtype).eval()


def _inputs(
    dec: HifiDecoder, num_latents: int, batch: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = dec.waveform_decoder.conv_pre.weight.dtype
    latents = torch.randn(
        batch, num_latents, dec.waveform_decoder.conv_pre.in_channels, dtype=dtype
    )
    cond = dec.waveform_decoder.cond_layer
    assert cond is not None
    g = torch.randn(batch, cond.in_channels, 1, dtype=dtype)
    return latents, g


def test_release_key_layout() -> None:
    with torch.device("meta"):
        gen = HifiganGenerator.from_config(HifiganConfig())
        dec = HifiDecoder()
    sd = gen.state_dict()
    expected = {"conv_pre.weight", "conv_pre.bias", "conv_post.weight"}
    expected |= {"cond_layer.weight", "cond_layer.bias"}
    expected |= {
        f"{m}.{i}.{p}" for m in ("ups", "conds") for i in range(4) for p in ("weight", "bias")
    }
    expected |= {
        f"resblocks.{j}.convs{c}.{k}.{p}"
        for j in range(12)
        for c in (1, 2)
        for k in range(3)
        for p in ("weight", "bias")
    }
    assert set(sd) == expected
    assert sd["ups.0.weight"].shape == (512, 256, 16)
    assert sd["ups.3.weight"].shape == (64, 32, 4)
    assert sd["conv_post.weight"].shape == (1, 32, 7)
    assert sd["conds.3.weight"].shape == (32, 512, 1)
    assert sd["resblocks.11.convs1.2.weight"].shape == (32, 32, 11)
    # coqui's waveform_decoder has 17,827,808 parameters: ours plus the 9,600 weight-norm gains
    assert sum(p.numel() for p in gen.parameters()) == 17_827_808 - 9_600
    assert len(gen.weight_normed_keys()) == 4 + 12 * 6
    dec_keys = dec.state_dict()
    assert len(dec_keys) == 460
    assert {k.split(".")[0] for k in dec_keys} == {"waveform_decoder", "speaker_encoder"}


def test_release_output_lengths() -> None:
    with torch.device("meta"):
        dec = HifiDecoder()
    assert dec.hop_length == 256
    assert dec.num_samples(20) == 22_272
    assert dec.num_samples(150) == 167_168
    for T in range(1, 700):
        assert dec.num_samples(T) == 256 * (4 * T * 24000 // 22050)


@pytest.mark.parametrize("num_latents", [1, 2, 3, 7, 20, 37])
def test_forward_shape(num_latents: int) -> None:
    dec = _tiny_decoder()
    latents, g = _inputs(dec, num_latents, batch=2)
    with torch.no_grad():
        wav = dec(latents, g)
    assert wav.shape == (2, 1, 256 * (4 * num_latents * 24000 // 22050))
    assert wav.abs().max() <= 1.0


def test_batch_items_are_independent() -> None:
    dec = _tiny_decoder()
    latents, g = _inputs(dec, 11, batch=2)
    with torch.no_grad():
        both = dec(latents, g)
        one = dec(latents[1:], g[1:])
    torch.testing.assert_close(both[1:], one, rtol=1e-5, atol=1e-6)


def test_speaker_embedding_is_required() -> None:
    dec = _tiny_decoder()
    latents, _ = _inputs(dec, 4)
    with pytest.raises(ValueError, match="speaker-conditioned"):
        dec.waveform_decoder(F.interpolate(latents.transpose(1, 2), scale_factor=4.0))


def test_upsample_latents_equals_interpolate() -> None:
    """Our tap arithmetic reproduces the two F.interpolate calls bit for bit (CPU)."""
    dec = _tiny_decoder()
    for T in [*range(1, 40), 146, 147, 148]:
        latents = torch.randn(2, T, 16)
        z = F.interpolate(latents.transpose(1, 2), scale_factor=[4.0], mode="linear")
        z = F.interpolate(z, scale_factor=[24000 / 22050], mode="linear")
        assert z.shape[-1] == dec.num_frames(T)
        assert torch.equal(dec.upsample_latents(latents), z), T
        if T < 30:
            continue
        for start in (1, 5, 13):
            frame_start = math.ceil(4 * 24000 / 22050 * (start + 1))
            lo, _ = dec.source_latents(frame_start, frame_start + 1)
            assert lo >= start
            part = dec.upsample_latents(latents[:, start:], start, frame_start)
            assert torch.equal(part, z[..., frame_start:]), (T, start)


def test_upsample_latents_rejects_missing_context() -> None:
    dec = _tiny_decoder()
    latents = torch.randn(1, 20, 16)
    with pytest.raises(ValueError, match="before latent_start"):
        dec.upsample_latents(latents[:, 5:], latent_start=5, frame_start=20)
    with pytest.raises(ValueError, match="outside"):
        dec.upsample_latents(latents, frame_start=0, frame_end=dec.num_frames(20) + 1)


def test_receptive_field_release() -> None:
    with torch.device("meta"):
        gen = HifiganGenerator.from_config(HifiganConfig())
        dec = HifiDecoder()
    assert gen.receptive_field() == (13, 13)
    frames_per_latent = 4 * 24000 / 22050
    left = right = 0
    for m in range(100, 100 + 640):  # 640 frames = 147 latents, one period of the grid
        lo, hi = dec.source_latents(m - 13, m + 14)
        t = math.floor((m + 0.5) / frames_per_latent)
        left, right = max(left, t - lo), max(right, hi - 1 - t)
    assert (left, right) == (4, 4)


def test_receptive_field_by_perturbation() -> None:
    """Perturbing input frame m changes exactly the output frames m - 13 .. m + 13 (float64)."""
    torch.manual_seed(0)
    gen = HifiganGenerator.from_config(replace(TINY, in_channels=8, cond_channels=4))
    gen = gen.double().eval()
    left, right = gen.receptive_field()
    M, m = 60, 30
    x = torch.randn(1, 8, M, dtype=torch.float64)
    g = torch.randn(1, 4, 1, dtype=torch.float64)
    with torch.no_grad():
        base = gen(x, g)
        x[..., m] += 10.0
        diff = (gen(x, g) - base).abs().view(M, 256).amax(dim=1)
    changed = torch.nonzero(diff > 0).flatten().tolist()
    assert changed[0] >= m - right and changed[-1] <= m + left
    assert changed[0] <= m - right + 1 and changed[-1] >= m + left - 1


def test_vocode_window_matches_forward_inside_receptive_field() -> None:
    dec = _tiny_decoder(torch.float64)
    latents, g = _inputs(dec, 30)
    left, right = dec.waveform_decoder.receptive_field()
    with torch.no_grad():
        full = dec(latents, g)[0, 0]
        keep_start, keep_end = 50, 90  # frames we want exact
        frame_start, frame_end = keep_start - left, keep_end + right
        lo, hi = dec.source_latents(frame_start, frame_end)
        wav = dec.vocode_window(latents[:, lo:hi], g, lo, frame_start, frame_end)[0, 0]
    assert wav.shape[-1] == 256 * (frame_end - frame_start)
    core = wav[256 * left : 256 * (frame_end - frame_start - right)]
    torch.testing.assert_close(core, full[256 * keep_start : 256 * keep_end], rtol=0, atol=1e-12)
    # the window edges are not exact: zero padding stands in for the missing context
    assert (wav[:256] - full[256 * frame_start : 256 * (frame_start + 1)]).abs().max() > 1e-6


def test_window_at_sequence_start_and_end_is_exact() -> None:
    dec = _tiny_decoder(torch.float64)
    latents, g = _inputs(dec, 8)
    with torch.no_grad():
        full = dec(latents, g)
        whole = dec.vocode_window(latents, g)
    torch.testing.assert_close(whole, full, rtol=0, atol=1e-12)


def test_stable_samples_do_not_change_when_latents_follow() -> None:
    dec = _tiny_decoder(torch.float64)
    latents, g = _inputs(dec, 24)
    assert dec.stable_samples(1) == dec.stable_samples(2) == 0
    with torch.no_grad():
        base = dec(latents, g)[0, 0]
        for T in (3, 4, 9, 17):
            other = latents.clone()
            other[:, T:] = 100.0 * torch.randn_like(other[:, T:])
            wav = dec(other, g)[0, 0]
            stable = dec.stable_samples(T)
            assert 0 <= dec.num_samples(T) - stable <= 4 * 1115
            assert torch.equal(wav[:stable], base[:stable]), T
            first = int(torch.nonzero(wav != base).flatten()[0])
            assert stable <= first < stable + 2 * 256, (T, stable, first)


@pytest.mark.parametrize("naming", ["parametrizations", "legacy"])
def test_strict_load_of_weight_normed_checkpoint(naming: str) -> None:
    src = _tiny_decoder()
    sd = src.state_dict()
    keys = [f"waveform_decoder.{k}" for k in src.waveform_decoder.weight_normed_keys()]
    released = unfold_weight_norm(sd, keys, naming=naming)  # type: ignore[arg-type]
    assert not any(k in released for k in keys)
    torch.manual_seed(5)
    dst = HifiDecoder(decoder_input_dim=16, d_vector_dim=8, generator=TINY).eval()
    dst.load_state_dict(fold_weight_norm(released), strict=True)
    latents, g = _inputs(src, 9)
    with torch.no_grad():
        torch.testing.assert_close(dst(latents, g), src(latents, g), rtol=1e-5, atol=1e-6)
