"""What half precision costs in audio: each GPT dtype (and the vocoder in half) against fp32.

Why: issue 8 asks for "fp16/bf16 weights and activations with fp32 where precision needs it" and
for the audio difference against fp32 to be measured and stated. Sampled codes part ways between
dtypes as soon as any logit moves (random weights give near-uniform logits, so that is a coin
flip), which would compare two different utterances. So like is compared with like:

1. fp32 samples the sentence's codes once (seed 0, code count forced, stop code off).
2. Every GPT (fp32 reloaded as a control, bf16, int8, fp16) is teacher-forced along those codes
   with the engine's own decode steps (``CodeStream.teacher_forced``), which gives its latents
   and its next-code logits at every position.
3. Both latent sequences go through the same fp32 HiFi-GAN.

Columns: latent relative error ``||a - b|| / ||a||``; greedy agreement, the share of positions
where the dtype's next-code argmax equals fp32's (how often a greedy decode would part ways at
that step: a guide to how soon sampled codes do); audio SNR ``10 log10(sum ref^2 / sum (ref -
x)^2)`` in dB; max absolute sample difference. The HiFi-GAN rows run a half-precision copy of the
vocoder on the fp32 latents instead: the evidence for keeping it in fp32. A dtype the loader
refuses on this device (fp16 on cpu, int8 on cuda) is listed with the loader's reason, except
that ``--cpu-fp16`` runs the fp16 rows on CPU kernels (a cast copy of the fp32 model): the
loader refuses fp16 there because it is some 30x slower than fp32, but its rounding is what this
measures. CPU and GPU kernels may accumulate differently; the storage and rounding are the same.

Random weights make noise, not speech, so these numbers bound the numeric error of the pipeline;
they are not listening scores. A benchmark: nothing is asserted. See bench/README.md.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from bench_core import SPEAKER, TEXT, ensure_checkpoint, machine_info
from xtts_core.engine import XttsEngine
from xtts_core.errors import DeviceError, XttsError
from xtts_core.generate import SamplingParams
from xtts_core.loader import cast_gpt, resolve_device
from xtts_core.voice import Voice

ROOT = Path(__file__).resolve().parents[1]
#: GPT precisions compared with fp32, in table order; fp32 itself comes first as the control.
GPT_DTYPES = ("fp32", "bf16", "int8", "fp16")
#: Vocoder precisions tried on a copy of the fp32 HiFi-GAN.
VOCODER_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Pass:
    """What one precision produced for the sentence: latents (T, C) and logits (T, V), fp32."""

    latents: Tensor
    logits: Tensor


@dataclass(frozen=True)
class Row:
    """One table row; ``skipped`` holds the reason when the precision cannot run here."""

    part: str
    precision: str
    latent_rel_err: float | None = None
    argmax_agree: tuple[int, int] | None = None
    snr_db: float | None = None
    max_abs_diff: float | None = None
    skipped: str | None = None


@torch.inference_mode()
def fp32_codes(engine: XttsEngine, voice: Voice, codes: int) -> tuple[list[int], Tensor]:
    """The codes fp32 samples (seed 0, exactly ``codes`` of them) and the latents it yielded."""
    params = SamplingParams(seed=0, min_new_codes=codes, max_new_codes=codes)
    pairs = list(engine.code_stream(TEXT, "en", voice, params))
    return [code for code, _ in pairs], torch.stack([latent for _, latent in pairs]).cpu()


def teacher_forced(engine: XttsEngine, voice: Voice, codes: list[int]) -> Pass:
    """Latents and next-code logits of ``engine``'s GPT along ``codes``
    (:meth:`xtts_core.generate.CodeStream.teacher_forced`)."""
    params = SamplingParams(min_new_codes=len(codes), max_new_codes=len(codes))
    latents, logits = engine.code_stream(TEXT, "en", voice, params).teacher_forced(codes)
    return Pass(latents.float().cpu(), logits.float().cpu())


@torch.inference_mode()
def vocode(vocoder: torch.nn.Module, latents: Tensor, voice: Voice, dtype: torch.dtype) -> Tensor:
    """The waveform (fp32, cpu) of ``latents`` (T, C) through ``vocoder`` run in ``dtype``."""
    device = next(vocoder.parameters()).device
    g = voice.speaker_embedding.to(device, dtype)
    wav: Tensor = vocoder(latents[None].to(device, dtype), g)[0, 0]
    return wav.float().cpu()


def relative_error(ref: Tensor, other: Tensor) -> float:
    return float((other - ref).norm() / ref.norm())


def snr_db(ref: Tensor, other: Tensor) -> float:
    """``10 log10(signal / error energy)``; ``inf`` when the two are identical."""
    noise = float(((ref.double() - other.double()) ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(float((ref.double() ** 2).sum()) / noise)


def compare_audio(ref: Tensor, other: Tensor) -> tuple[float, float]:
    """(SNR dB, max |difference|) of two waveforms of the same length."""
    if ref.shape != other.shape:  # the vocoder's length depends only on the latent count
        raise RuntimeError(f"audio lengths differ: {tuple(ref.shape)} vs {tuple(other.shape)}")
    return snr_db(ref, other), float((ref - other).abs().max())


def gpt_rows(
    load: Callable[[str], XttsEngine], exact: Pass, exact_wav: Tensor, vocoder: torch.nn.Module,
    voice: Voice, codes: list[int],
) -> list[Row]:  # fmt: skip
    """One row per GPT dtype: teacher-forced along ``codes``, vocoded in fp32, against fp32."""
    exact_argmax = exact.logits.argmax(-1)
    rows = []
    for name in GPT_DTYPES:
        try:
            engine = load(name)
        except DeviceError as exc:
            rows.append(Row("GPT", name, skipped=str(exc)))
            continue
        got = teacher_forced(engine, voice, codes)
        del engine  # one extra model in memory at a time (release size: 1-2 GB each)
        wav = vocode(vocoder, got.latents, voice, torch.float32)
        agree = int((got.logits.argmax(-1) == exact_argmax).sum())
        label = {"fp32": "fp32 (reloaded: control)", "int8": "int8 (weights; bf16 activations)"}
        rows.append(
            Row("GPT", label.get(name, name), relative_error(exact.latents, got.latents),
                (agree, len(codes)), *compare_audio(exact_wav, wav))
        )  # fmt: skip
    return rows


def fp16_on_cpu(engine: XttsEngine) -> XttsEngine:
    """A copy of the fp32 ``engine`` with its GPT cast to fp16 as the loader casts it on CUDA."""
    half = copy.deepcopy(engine)
    cast_gpt(half.model.gpt, torch.float16)
    return half


def vocoder_rows(
    vocoder: torch.nn.Module, exact: Pass, exact_wav: Tensor, voice: Voice, cpu_fp16: bool
) -> list[Row]:
    """The fp32 latents through a half-precision copy of the HiFi-GAN, against fp32."""
    on_cuda = next(vocoder.parameters()).device.type == "cuda"
    rows = []
    for name, dtype in VOCODER_DTYPES.items():
        if dtype == torch.float16 and not (on_cuda or cpu_fp16):
            rows.append(
                Row("HiFi-GAN", name, skipped="fp16 is tried on cuda only, as in the loader")
            )
            continue
        half = copy.deepcopy(vocoder).to(dtype)
        try:
            wav = vocode(half, exact.latents, voice, dtype)
        except RuntimeError as exc:  # an op without a kernel for this dtype on this device
            rows.append(Row("HiFi-GAN", name, skipped=str(exc).splitlines()[0]))
            continue
        rows.append(Row("HiFi-GAN", name, None, None, *compare_audio(exact_wav, wav)))
    return rows


def table(rows: list[Row]) -> str:
    """The rows as one markdown table."""
    lines = [
        "| part | precision | latent rel. error | greedy argmax agreement | audio SNR dB "
        "| max abs sample diff |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.skipped is not None:
            cells = [f"not run: {r.skipped}", "-", "-", "-"]
        else:
            agree = "-"
            if r.argmax_agree is not None:
                same, total = r.argmax_agree
                agree = f"{100 * same / total:.1f}% ({same}/{total})"
            cells = [
                "-" if r.latent_rel_err is None else f"{r.latent_rel_err:.2e}",
                agree,
                f"{r.snr_db:.1f}" if r.snr_db is not None else "-",
                f"{r.max_abs_diff:.2e}" if r.max_abs_diff is not None else "-",
            ]
        lines.append(f"| {r.part} | {r.precision} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_line(device: torch.device) -> str:
    """CPU, torch threads and versions (bench_core's), the GPU when on cuda, the load average."""
    info = machine_info()
    gpu = f"; gpu {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (
        f"cpu: {info['cpu']} ({info['cpu_count']} cpus, torch threads {info['torch_threads']}, "
        f"{info['cpu_capability']}){gpu}; python {info['python']}; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + f"; load average {info['loadavg_start'][0]:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--size", choices=["tiny", "mid", "release"], default="release")
    ap.add_argument(
        "--checkpoint-dir", type=Path,
        help="an existing checkpoint to use; default: bench_core.py's cache .cache/bench/<size>",
    )  # fmt: skip
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--codes", type=int, default=150, help="codes in the sentence (min = max)")
    ap.add_argument(
        "--cpu-fp16", action="store_true",
        help="on cpu, run the fp16 rows too, on cpu kernels (GPT ~30x slower than fp32)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.codes < 1:
        ap.error(f"--codes must be >= 1, got {args.codes}")
    try:
        device = resolve_device(args.device)
    except DeviceError as exc:
        ap.error(str(exc))
    print(machine_line(device), flush=True)
    directory = (
        args.checkpoint_dir or ensure_checkpoint(ROOT / ".cache/bench" / args.size, args.size)[0]
    )

    try:
        reference = XttsEngine.from_pretrained(directory, str(device), "fp32")
    except XttsError as exc:  # no checkpoint there, an unreadable one, ...
        ap.error(str(exc))
    cpu_fp16 = args.cpu_fp16 and device.type == "cpu"

    def load(dtype: str) -> XttsEngine:
        if dtype == "fp16" and cpu_fp16:
            return fp16_on_cpu(reference)
        return XttsEngine.from_pretrained(directory, str(device), dtype)

    limit = reference.config.gpt.max_new_codes
    if args.codes > limit:
        ap.error(f"--codes {args.codes} is over the model's max_new_codes ({limit})")
    voice = reference.speaker(SPEAKER)
    vocoder = reference.model.hifigan_decoder
    codes, streamed = fp32_codes(reference, voice, args.codes)
    exact = teacher_forced(reference, voice, codes)
    exact_wav = vocode(vocoder, exact.latents, voice, torch.float32)
    seconds = exact_wav.numel() / reference.sample_rate
    peak, rms = float(exact_wav.abs().max()), float(exact_wav.pow(2).mean().sqrt())
    drift = float((exact.latents - streamed).abs().max())  # 0: teacher forcing is the stream's path
    print(
        f"checkpoint {directory} ({args.size}) on {device}; {SPEAKER!r}, {TEXT!r}; "
        f"{len(codes)} codes sampled by fp32 (seed 0): {seconds:.2f} s of audio, fp32 peak "
        f"{peak:.3g}, rms {rms:.3g}; teacher-forced fp32 latents vs the stream's: max |diff| "
        f"{drift:.3g}",
        flush=True,
    )
    rows = gpt_rows(load, exact, exact_wav, vocoder, voice, codes)
    rows += vocoder_rows(vocoder, exact, exact_wav, voice, cpu_fp16)
    print(table(rows))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
