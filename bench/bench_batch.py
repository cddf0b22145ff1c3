"""Concurrency benchmark of the GPT decode: N streams batched in one BatchDecoder vs one at a time.

Why: a server that runs one stream per model makes the N-th concurrent client wait for the N-1
before it (issue 8). Batching reads the weights once per step for every stream. This measures,
for N concurrent streams of the same sentence with the code count forced (stop code off):

- one-at-a-time: the streams decode one after another on one model (``CodeStream``), which is what
  a one-stream-per-model worker gives N clients that arrive together;
- batched: all N join one :class:`~xtts_core.batch.BatchDecoder` at once.

Columns: time to the first chunk of codes per stream (``--first-chunk`` codes, what the vocoder
needs for first audio), p50 and p95 over the streams; per-stream real-time factor of the codes
(decode time / audio duration of its codes, 1024 samples at 22.05 kHz per code); aggregate audio
seconds produced per wall second. GPT only: vocoding is not in this first table.

A second table runs the whole pipeline (GPT and HiFi-GAN, chunk by chunk) through a
:class:`~xtts_core.scheduler.BatchScheduler`, once vocoding the chunks due in a step one job after
another and once in batched generator calls (``batch_vocoding``): time to first audio per stream
(p50 / p95), aggregate audio seconds per wall second, and the share of the wall time spent
vocoding. All N streams start in the same step there (``PREFILL_ALL``), so their chunks are due
together.

Run: ``hatch run bench:python bench/bench_batch.py --size mid --streams 1 4 16``. Random weights;
only timings mean anything. Measure on a quiet machine: other load skews every column.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from xtts_core.batch import BatchDecoder
from xtts_core.chunking import StreamOptions
from xtts_core.engine import XttsEngine
from xtts_core.generate import CodeStream, SamplingParams
from xtts_core.random_checkpoint import write_random_checkpoint
from xtts_core.scheduler import BatchScheduler

TEXT = "The quick brown fox jumps over the lazy dog while the sun sets slowly tonight."
SECONDS_PER_CODE = 1024 / 22050
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Row:
    """One measured configuration."""

    mode: str
    streams: int
    first_p50: float
    first_p95: float
    rtf_p50: float
    audio_per_s: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_at_a_time(engine: XttsEngine, ids: list[int], n: int, codes: int, first: int) -> Row:
    latent = engine.speaker("Random Speaker").gpt_cond_latent
    params = SamplingParams(seed=0, min_new_codes=codes, max_new_codes=codes)
    t0 = time.perf_counter()
    firsts, rtfs = [], []
    for _ in range(n):
        started = time.perf_counter()
        for i, _pair in enumerate(CodeStream(engine.model.gpt, latent, ids, params)):
            if i + 1 == first:
                firsts.append(time.perf_counter() - t0)
        rtfs.append((time.perf_counter() - started) / (codes * SECONDS_PER_CODE))
    wall = time.perf_counter() - t0
    return Row(
        "one-at-a-time", n, statistics.median(firsts), percentile(firsts, 0.95),
        statistics.median(rtfs), n * codes * SECONDS_PER_CODE / wall,
    )  # fmt: skip


def batched(engine: XttsEngine, ids: list[int], n: int, codes: int, first: int) -> Row:
    latent = engine.speaker("Random Speaker").gpt_cond_latent
    cfg = engine.config.gpt
    prompt = cfg.num_conditioning_latents + len(ids) + 3
    decoder = BatchDecoder(engine.model.gpt, n, max_positions=prompt + codes)
    params = SamplingParams(seed=0, min_new_codes=codes, max_new_codes=codes)
    t0 = time.perf_counter()
    streams = [decoder.add(latent, ids, params) for _ in range(n)]
    firsts: dict[int, float] = {}
    while decoder.active:
        for out in decoder.step():
            if len(out.stream.codes) == first:
                firsts[out.stream.id] = time.perf_counter() - t0
    wall = time.perf_counter() - t0
    assert all(len(s.codes) == codes for s in streams)
    rtf = wall / (codes * SECONDS_PER_CODE)  # every stream runs from t0 to the end
    values = list(firsts.values())
    return Row(
        "batched", n, statistics.median(values), percentile(values, 0.95), rtf,
        n * codes * SECONDS_PER_CODE / wall,
    )  # fmt: skip


@dataclass(frozen=True)
class PipelineRow:
    """One measured scheduler run (GPT + vocoder)."""

    vocoding: str
    streams: int
    first_p50: float
    first_p95: float
    audio_per_s: float
    vocode_share: float
    calls: int


#: Prefill budget of the pipeline runs: every stream prefills in the first step, so all N start
#: together and their chunks fall due in the same steps (the case batched vocoding is for; with
#: a small budget the starts are staggered and the chunks of different streams rarely coincide).
PREFILL_ALL = 1 << 16

#: Vocoding modes of the pipeline table: (label, batch_vocoding, vocode_max_padding).
VOCODING = [
    ("per job", False, 0.0),
    ("batched, equal sizes", True, 0.0),
    ("batched, pad <= 25%", True, 0.25),
]


def scheduled(
    engine: XttsEngine, n: int, codes: int, batch: bool, max_padding: float, label: str
) -> PipelineRow:
    """N jobs of TEXT submitted at once to a scheduler; every job's first chunk and the end.

    Forward hooks on the HiFi-GAN generator time its calls (the vocoding share of the wall time).
    """
    voice = engine.speaker("Random Speaker")
    params = SamplingParams(seed=0, min_new_codes=codes, max_new_codes=codes)
    generator = engine.model.hifigan_decoder.waveform_decoder
    started: list[float] = []
    spent: list[float] = []
    hooks = [
        generator.register_forward_pre_hook(lambda *_: started.append(time.perf_counter())),
        generator.register_forward_hook(lambda *_: spent.append(time.perf_counter() - started[-1])),
    ]
    try:
        scheduler = BatchScheduler(
            engine, max_streams=n, prefill_chunk=PREFILL_ALL, batch_vocoding=batch,
            vocode_max_padding=max_padding,
        )  # fmt: skip
        t0 = time.perf_counter()
        jobs = [
            scheduler.submit(TEXT, "en", voice, params, options=StreamOptions(), split_text=False)
            for _ in range(n)
        ]
        firsts: list[float] = []
        with scheduler:
            for job in jobs:
                firsts.append(next(iter(job)).elapsed_s)
                list(job)
        wall = time.perf_counter() - t0
    finally:
        for hook in hooks:
            hook.remove()
    return PipelineRow(
        label, n, statistics.median(firsts), percentile(firsts, 0.95),
        n * codes * SECONDS_PER_CODE / wall, sum(spent) / wall, len(spent),
    )  # fmt: skip


#: Generator frames of a steady-state window: a 20-code chunk plus 13 frames of context each side.
WINDOW_FRAMES = 113


def vocoder_only(engine: XttsEngine, n: int, repeats: int) -> tuple[float, float, float]:
    """Seconds (best of ``repeats``) to vocode ``n`` windows one call each, in one call of equal
    rows, and in one call where every other row is a 6-code first chunk (37 frames) padded."""
    generator = engine.model.hifigan_decoder.waveform_decoder
    device, dtype = generator.conv_pre.weight.device, generator.conv_pre.weight.dtype
    width = generator.conv_pre.in_channels
    rng = torch.Generator(device="cpu").manual_seed(0)
    frames = torch.randn(n, width, WINDOW_FRAMES, generator=rng).to(device, dtype)
    g = engine.speaker("Random Speaker").speaker_embedding.to(device, dtype).repeat(n, 1, 1)
    lengths = [WINDOW_FRAMES if i % 2 == 0 else 37 for i in range(n)]

    def best(run: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        return min(times)

    with torch.inference_mode():
        alone = best(lambda: [generator(frames[i : i + 1], g[i : i + 1]) for i in range(n)])
        together = best(lambda: generator(frames, g))
        padded = best(lambda: generator(frames, g, lengths))
    return alone, together, padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["tiny", "mid", "release"], default="mid")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--codes", type=int, default=60)
    parser.add_argument("--first-chunk", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    args = parser.parse_args()

    directory = ROOT / ".cache" / "bench" / f"batch-{args.size}"
    if not (directory / "model.pth").is_file():
        write_random_checkpoint(directory, args.size, seed=0)
    engine = XttsEngine.from_pretrained(directory, device=args.device, dtype=args.dtype)
    ids = engine.tokenizer.encode(TEXT, "en")
    batched(engine, ids, 1, 8, 1)  # warm-up
    print(
        f"{args.size} model, {args.device} {args.dtype}, {args.codes} codes per stream "
        f"({args.codes * SECONDS_PER_CODE:.1f} s of audio), torch threads {torch.get_num_threads()}"
    )
    print(
        f"| mode | streams | first {args.first_chunk} codes p50 / p95 s | RTF p50 | audio s per s |"
    )
    print("|---|---|---|---|---|")
    for n in args.streams:
        for run in (one_at_a_time, batched):
            row = run(engine, ids, n, args.codes, args.first_chunk)
            print(
                f"| {row.mode} | {row.streams} | {row.first_p50:.3f} / {row.first_p95:.3f} | "
                f"{row.rtf_p50:.2f} | {row.audio_per_s:.1f} |",
                flush=True,
            )
    print(f"\nHiFi-GAN alone: N windows of {WINDOW_FRAMES} frames (a 20-code chunk), best of 5 s")
    print("| windows | one call each | one batched call | batched, half padded from 37 |")
    print("|---|---|---|---|")
    for n in args.streams:
        alone, together, padded = vocoder_only(engine, n, repeats=5)
        print(f"| {n} | {alone:.3f} | {together:.3f} | {padded:.3f} |", flush=True)
    print("\nWhole pipeline through BatchScheduler (GPT + HiFi-GAN), default StreamOptions")
    print(
        "| vocoding | streams | first audio p50 / p95 s | audio s per s | vocoding share "
        "| generator calls |"
    )
    print("|---|---|---|---|---|---|")
    scheduled(engine, 1, 8, True, 0.0, "warm-up")
    for n in args.streams:
        for label, batch, max_padding in VOCODING:
            pipe = scheduled(engine, n, args.codes, batch, max_padding, label)
            print(
                f"| {pipe.vocoding} | {pipe.streams} | {pipe.first_p50:.3f} / "
                f"{pipe.first_p95:.3f} | {pipe.audio_per_s:.1f} | {pipe.vocode_share:.0%} "
                f"| {pipe.calls} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
