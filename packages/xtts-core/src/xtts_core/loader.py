"""Build a ready-to-run :class:`XttsModel` from checkpoint files on a device and dtype.

The network is built on the ``meta`` device (no memory, no random init), the checkpoint is
mapped into our layout (``checkpoint.py``), shapes are checked so a mismatch names the tensor,
and the weights are assigned and moved once. ``dtype`` applies to the GPT transformer only: the
conditioning front end, the vocoder and the speaker encoder stay in fp32, where they are cheap and
where half precision would cost audio quality.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from xtts_core._extras import require_inference

require_inference("xtts_core.loader")

import torch  # noqa: E402

from xtts_core.checkpoint import (  # noqa: E402
    CheckpointFiles,
    check_shapes,
    extract_state_dict,
    read_config,
    read_model_file,
    read_speakers,
)
from xtts_core.config import XttsConfig  # noqa: E402
from xtts_core.errors import DeviceError  # noqa: E402
from xtts_core.model.gpt import GPT  # noqa: E402
from xtts_core.model.quantize import quantize_int8_  # noqa: E402
from xtts_core.model.xtts import XttsModel  # noqa: E402
from xtts_core.text.tokenizer import XttsTokenizer  # noqa: E402

logger = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class LoadedCheckpoint:
    """A model on its device with the tokenizer, config and named speakers that came with it."""

    model: XttsModel
    tokenizer: XttsTokenizer
    config: XttsConfig
    speakers: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` -> cuda when present, else cpu; a CUDA request without CUDA fails clearly."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {device!r} requested but CUDA is not available on this machine"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {device!r} requested but only {torch.cuda.device_count()} GPUs exist"
            )
    elif dev.type != "cpu":
        raise DeviceError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")
    return dev


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """Map ``fp32``/``fp16``/``bf16``; fp16 needs CUDA (CPU half matmuls are slow and lossy)."""
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise DeviceError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}, int8")
        dtype = DTYPES[dtype]
    if dtype == torch.float16 and device.type != "cuda":
        raise DeviceError("fp16 needs a CUDA device; use fp32 or bf16 on cpu")
    return dtype


def cast_gpt(gpt: GPT, dtype: torch.dtype) -> None:
    """Put the GPT in ``dtype``, all but its conditioning front end, which stays fp32: it runs
    once per voice, and the voice latents it makes feed every sentence spoken with that voice."""
    gpt.to(dtype)
    gpt.conditioning_encoder.float()
    if gpt.cfg.use_perceiver_resampler:
        gpt.conditioning_perceiver.float()


def load_checkpoint(
    files: CheckpointFiles | str | Path,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "fp32",
) -> LoadedCheckpoint:
    """Load config, vocab, weights and speakers; never writes to the checkpoint's files.

    ``dtype`` is the GPT's precision: ``fp32`` (exact, the parity mode), ``bf16`` (cpu or cuda),
    ``fp16`` (cuda), or ``int8`` (cpu: bf16 with int8 weight-only transformer matrices, the
    fastest CPU mode; see ``model/quantize.py``).
    """
    if not isinstance(files, CheckpointFiles):
        files = CheckpointFiles.from_dir(files)
    files.check()
    dev = resolve_device(device)
    int8 = dtype == "int8"
    if int8 and dev.type != "cpu":
        raise DeviceError("int8 weight-only is a CPU mode; use fp16 or bf16 on cuda")
    gpt_dtype = torch.bfloat16 if int8 else resolve_dtype(dtype, dev)
    base = XttsConfig.from_json_file(files.config)
    tokenizer = XttsTokenizer.from_file(files.vocab, base.gpt.max_text_tokens)
    cfg = read_config(files, tokenizer.vocab_size, tokenizer.special.start, tokenizer.special.stop)
    state = extract_state_dict(read_model_file(files.model), files.model)
    with torch.device("meta"):
        model = XttsModel(cfg)
    expected = model.state_dict()
    check_shapes(expected, state, files.model)
    model.load_state_dict(state, strict=True, assign=True)
    model.to(dev).eval().requires_grad_(False)
    cast_gpt(model.gpt, gpt_dtype)
    if int8:
        quantize_int8_(model.gpt.gpt, gpt_dtype)
    leftover = [name for name, t in model.state_dict(keep_vars=True).items() if t.is_meta]
    if leftover:  # a buffer the checkpoint does not carry; a bug in our module tree
        raise RuntimeError(f"tensors left uninitialised after loading: {leftover[:5]}")
    speakers = read_speakers(files.speakers) if files.speakers else {}
    logger.info(
        "loaded XTTS checkpoint %s on %s (%s): %d layers, width %d, %d named speakers",
        files.model, dev, gpt_dtype, cfg.gpt.layers, cfg.gpt.width, len(speakers),
    )  # fmt: skip
    return LoadedCheckpoint(model, tokenizer, cfg, speakers)
