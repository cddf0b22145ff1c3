"""int8 weight-only GPT layers: close to the float layer, both kernels agree, engine runs on it."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from xtts_core.engine import XttsEngine  # noqa: E402
from xtts_core.errors import DeviceError  # noqa: E402
from xtts_core.generate import SamplingParams  # noqa: E402
from xtts_core.model.gpt import Conv1D  # noqa: E402
from xtts_core.model.quantize import PACKED_ROWS, Int8Conv1D, quantize_int8_  # noqa: E402


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("rows", [1, PACKED_ROWS, PACKED_ROWS + 1, 64])
def test_int8_layer_is_close_to_the_float_layer(rows: int) -> None:
    torch.manual_seed(0)
    layer = Conv1D(256, 384)
    layer.bias.data.normal_(0, 0.02)
    x = torch.randn(1, rows, 256)
    q = Int8Conv1D(layer, torch.bfloat16)
    assert q.weight.dtype == torch.int8
    assert q.weight.shape == (384, 256)
    assert rel_err(q(x), layer(x)) < 2e-2  # int8 steps + bf16 activations


def test_packed_and_dense_kernels_agree() -> None:
    torch.manual_seed(1)
    q = Int8Conv1D(Conv1D(128, 64), torch.bfloat16)
    x = torch.randn(PACKED_ROWS + 4, 128)
    dense = q(x)  # more rows than PACKED_ROWS: the dequantised matmul
    packed = torch.cat([q(row[None]) for row in x])  # one row at a time: the int8 kernel
    assert rel_err(packed, dense) < 1e-2


def test_quantize_replaces_every_dense_layer() -> None:
    block = torch.nn.ModuleDict({"a": Conv1D(8, 8), "b": torch.nn.Sequential(Conv1D(8, 4))})
    assert quantize_int8_(block) == 2
    assert not any(isinstance(m, Conv1D) for m in block.modules())


def test_int8_engine_streams_exactly_its_own_one_shot_audio(tiny_dir: Path) -> None:
    engine = XttsEngine.from_pretrained(tiny_dir, "cpu", "int8")
    voice = engine.speaker("Random Speaker")
    params = SamplingParams(seed=3, min_new_codes=12, max_new_codes=12)
    one = engine.synthesize("int eight", "en", voice, params)
    streamed = np.concatenate([c.samples for c in engine.stream("int eight", "en", voice, params)])
    assert np.isfinite(one.wav).all()
    assert float(np.abs(streamed - one.wav).max()) <= 1e-5


def test_int8_is_a_cpu_mode(tiny_dir: Path) -> None:
    with pytest.raises(DeviceError):
        XttsEngine.from_pretrained(tiny_dir, "cuda", "int8")
