"""Unit tests for xtts_core.audio.resample (no torchaudio needed)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from xtts_core.audio import resample  # noqa: E402
from xtts_core.audio.resample import _kernel  # noqa: E402
from xtts_core.errors import AudioError  # noqa: E402

RATE_PAIRS = [(22050, 16000), (44100, 22050), (16000, 22050), (48000, 24000), (24000, 16000)]


def test_equal_rates_return_the_input_itself() -> None:
    wav = torch.randn(1, 100)
    assert resample(wav, 22050, 22050) is wav


@pytest.mark.parametrize(("orig", "new"), RATE_PAIRS)
@pytest.mark.parametrize("length", [0, 1, 2, 441, 1000, 22051])
def test_output_length_is_ceil_of_scaled_length(orig: int, new: int, length: int) -> None:
    out = resample(torch.zeros(2, length), orig, new)
    assert out.shape == (2, math.ceil(length * new / orig))


def test_keeps_leading_dims_dtype_and_matches_per_row() -> None:
    wav = torch.randn(2, 3, 5000, dtype=torch.float64)
    out = resample(wav, 44100, 16000)
    assert out.shape == (2, 3, math.ceil(5000 * 16000 / 44100))
    assert out.dtype == torch.float64
    assert torch.equal(out[1, 2], resample(wav[1, 2], 44100, 16000))


@pytest.mark.parametrize(("orig", "new"), RATE_PAIRS)
def test_low_frequency_sine_survives(orig: int, new: int) -> None:
    seconds = 0.5
    wav = torch.sin(2 * math.pi * 440 * torch.arange(int(orig * seconds)) / orig)
    out = resample(wav, orig, new)
    want = torch.sin(2 * math.pi * 440 * torch.arange(out.shape[-1]) / new)
    edge = new // 50  # the filter sees zero padding near both ends
    assert (out[edge:-edge] - want[edge:-edge]).abs().max() < 1e-3


def test_kernel_is_cached() -> None:
    wav = torch.randn(1, 1000)
    resample(wav, 32000, 16000)
    hits = _kernel.cache_info().hits
    resample(wav, 32000, 16000)
    assert _kernel.cache_info().hits == hits + 1


def test_kernel_built_under_inference_mode_supports_autograd() -> None:
    with torch.inference_mode():
        resample(torch.randn(1, 100), 12000, 8000)
    wav = torch.randn(1, 100, requires_grad=True)
    resample(wav, 12000, 8000).sum().backward()
    assert wav.grad is not None


def test_rejects_integer_waveform() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        resample(torch.zeros(1, 10, dtype=torch.int16), 16000, 8000)


@pytest.mark.parametrize("rate", [0, -16000, 22050.5])
def test_rejects_bad_rates(rate: float) -> None:
    with pytest.raises(AudioError, match="positive integer"):
        resample(torch.zeros(1, 10), rate, 16000)  # type: ignore[arg-type]


# --- StreamingResampler ----------------------------------------------------------------------------

STREAM_PAIRS = [(24000, 16000), (24000, 8000), (24000, 22050), (24000, 44100), (24000, 48000)]


@pytest.mark.parametrize(("orig", "new"), STREAM_PAIRS)
@pytest.mark.parametrize("sizes", [[5000], [1, 2, 3, 500, 7, 1999], [300] * 9, [0, 17, 0, 4000]])
def test_streaming_equals_one_shot(orig: int, new: int, sizes: list[int]) -> None:
    from xtts_core.audio import StreamingResampler

    torch.manual_seed(0)
    wav = torch.randn(sum(sizes))
    stream = StreamingResampler(orig, new)
    parts, start = [], 0
    for size in sizes:
        parts.append(stream.push(wav[start : start + size]))
        start += size
    parts.append(stream.flush())
    joined = torch.cat(parts)
    expected = resample(wav, orig, new)
    assert joined.shape == expected.shape
    torch.testing.assert_close(joined, expected, atol=1e-5, rtol=0)


def test_streaming_flush_resets_for_the_next_signal() -> None:
    from xtts_core.audio import StreamingResampler

    wav = torch.randn(999)
    stream = StreamingResampler(24000, 16000)
    first = torch.cat([stream.push(wav), stream.flush()])
    second = torch.cat([stream.push(wav), stream.flush()])
    assert torch.equal(first, second)


def test_streaming_equal_rates_pass_through_and_bad_input_is_refused() -> None:
    from xtts_core.audio import StreamingResampler

    wav = torch.randn(10)
    stream = StreamingResampler(24000, 24000)
    assert stream.push(wav) is wav
    assert stream.flush().numel() == 0
    with pytest.raises(AudioError, match="1-D"):
        StreamingResampler(24000, 16000).push(torch.zeros(1, 10))
    with pytest.raises(AudioError, match="new_sr"):
        StreamingResampler(24000, 0)
