"""``bench/bench_precision.py``: the half-precision audio measurement runs and measures right.

The benchmark asserts nothing itself, so these tests check the measurement: fp32 against a
reloaded fp32 must come out identical (infinite SNR, zero error, full argmax agreement), bf16
must come out different but close, teacher forcing must follow the engine's own decode path, and
the SNR formula must give the textbook value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from bench_scripts import bench_script

if TYPE_CHECKING:
    from xtts_core.engine import XttsEngine
    from xtts_core.voice import Voice


@pytest.fixture(scope="module")
def bench(one_torch_thread: None) -> Iterator[ModuleType]:
    """``bench/bench_precision.py`` as a module."""
    with bench_script("bench_precision") as module:
        yield module


def table_rows(out: str) -> dict[tuple[str, str], list[str]]:
    """``(part, precision) -> the other cells`` of the markdown table in ``out``."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in ("GPT", "HiFi-GAN"):
            rows[cells[0], cells[1].split(" ")[0]] = cells[2:]
    return rows


def test_main_prints_a_row_per_precision(
    bench: ModuleType, tiny_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--checkpoint-dir", str(tiny_dir), "--codes", "8"]) == 0
    rows = table_rows(capsys.readouterr().out)
    expected = {("GPT", d) for d in bench.GPT_DTYPES} | {("HiFi-GAN", "bf16"), ("HiFi-GAN", "fp16")}
    assert set(rows) == expected
    err, agree, snr, diff = rows["GPT", "fp32"]
    assert (err, agree, snr, diff) == ("0.00e+00", "100.0% (8/8)", "inf", "0.00e+00")
    for part in ("GPT", "HiFi-GAN"):  # lower precision is measured as different, and close
        snr = rows[part, "bf16"][2]
        assert snr != "inf" and float(snr) > 20, rows[part, "bf16"]
    assert rows["GPT", "fp16"][0].startswith("not run: fp16 needs a CUDA device")  # cpu here


def test_teacher_forcing_follows_the_stream(
    bench: ModuleType, engine: XttsEngine, voice: Voice
) -> None:
    import torch

    codes, streamed = bench.fp32_codes(engine, voice, 6)
    forced = bench.teacher_forced(engine, voice, codes)
    assert len(codes) == 6 and forced.logits.shape[0] == 6
    assert torch.equal(forced.latents, streamed)


def test_snr_formula(bench: ModuleType) -> None:
    import torch

    ref = torch.linspace(-1, 1, 101)
    assert bench.snr_db(ref, ref.clone()) == math.inf
    assert bench.snr_db(ref, ref * 1.1) == pytest.approx(20.0)  # error energy = 1% of signal


def test_codes_must_be_positive(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(["--codes", "0"])
    assert exc.value.code == 2
    assert "--codes must be >= 1" in capsys.readouterr().err


def test_missing_cuda_is_a_usage_error(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--device", "cuda"])
    assert exc.value.code == 2
    assert "CUDA is not available" in capsys.readouterr().err
