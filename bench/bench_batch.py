"""Concurrency benchmark: N streams batched on one model vs one per process vs the reference.

Why: a server that runs one stream per model makes the N-th concurrent client wait for the N-1
before it, or needs N models (issue 8). Batching reads the weights once per step for every stream.
For N concurrent streams of the same sentence with the code count forced (stop code off), four
tables:

1. GPT only: the streams decoded one after another on one model (``CodeStream``), all N in one
   :class:`~xtts_core.batch.BatchDecoder`, and the same with fixed shapes (``decode_graphs``: CUDA
   graphs on CUDA, captured before timing; on CPU the same padded shapes run eagerly, so that row
   shows what the padding costs). Columns: time to the first chunk of codes per stream
   (``--first-chunk`` codes, what the vocoder needs for first audio) p50 / p95, per-stream
   real-time factor of the codes (decode time / audio duration of its codes), aggregate audio
   seconds per wall second, peak memory.
2. HiFi-GAN alone: N windows vocoded one call each, in one batched call, and padded.
3. The whole pipeline (GPT and HiFi-GAN, chunk by chunk) through a
   :class:`~xtts_core.scheduler.BatchScheduler`, vocoding the chunks due in a step one job after
   another or in batched generator calls. All N streams start in the same step (``PREFILL_ALL``).
4. The systems side by side, every stream arriving at one instant: ours batched (the scheduler
   with its default batched vocoding), ours as the original system deploys it (a pool of worker
   processes, each with its own model, one stream each: ``_per_process.py``), and coqui-tts 0.28's
   ``inference_stream`` (the reference, chunk 20) on one model serving the N streams one after
   another as the reference server does. Columns: time to first audio per stream from the common
   start (p50 / p95), per-stream RTF (the stream's end, from the common start, over its audio
   seconds; p50), aggregate audio seconds per wall second, peak memory.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` reset per row; on CPU the resident set's
high-water mark (``VmHWM``, reset per row through ``/proc/self/clear_refs`` after ``malloc_trim``
hands freed heap back), which counts everything resident in the process: torch, the model, what
earlier rows left cached. The per-process row sums its workers' peaks (each a whole process).
The side-by-side rows other than ours run after ours, with our engine freed.

Run: ``hatch run bench:python bench/bench_batch.py --size mid --streams 1 4 16 64`` (the reference
rows need coqui-tts, as in the ``bench`` env; ``--skip-reference`` leaves them out). Random
weights; only timings mean anything. Measure on a quiet machine: other load skews every column.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import util
from pathlib import Path

import torch

from _per_process import one_stream_per_process, resident_peak
from bench_core import RATE, SPEAKER, TEXT, System, ensure_checkpoint, reference_system
from xtts_core.batch import BatchDecoder
from xtts_core.chunking import StreamOptions
from xtts_core.engine import XttsEngine
from xtts_core.generate import CodeStream, SamplingParams
from xtts_core.scheduler import BatchScheduler

SECONDS_PER_CODE = 1024 / 22050
ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def now(device: torch.device) -> float:
    """``perf_counter`` once the device has finished the work queued so far."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window (see :func:`peak_bytes`)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError, AttributeError):  # glibc: hand freed heap back first,
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # so earlier rows' garbage is not counted
    with contextlib.suppress(OSError):  # Linux only: "5" resets VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")


def peak_bytes(device: torch.device) -> int | None:
    """Peak allocated device memory since :func:`reset_peak`, or on CPU the resident set's
    high-water mark; None where neither can be read."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resident_peak()


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


@dataclass(frozen=True)
class Row:
    """One measured GPT-only configuration."""

    mode: str
    streams: int
    first_p50: float
    first_p95: float
    rtf_p50: float
    audio_per_s: float
    peak: int | None
    capture_s: float | None = None  # CUDA graph capture before the timed run (fixed shapes)


def one_at_a_time(engine: XttsEngine, ids: list[int], n: int, codes: int, first: int) -> Row:
    latent = engine.speaker(SPEAKER).gpt_cond_latent
    params = SamplingParams(seed=0, min_new_codes=codes, max_new_codes=codes)
    device = engine.model.device
    reset_peak(device)
    t0 = time.perf_counter()
    firsts, rtfs = [], []
    for _ in range(n):
        started = time.perf_counter()
        for i, _pair in enumerate(CodeStream(engine.model.gpt, latent, ids, params)):
            if i + 1 == first:  # the code is on the host: the step has finished
                firsts.append(time.perf_counter() - t0)
        rtfs.append((now(device) - started) / (codes * SECONDS_PER_CODE))
    wall = now(device) - t0
    return Row(
        "one-at-a-time", n, statistics.median(firsts), percentile(firsts, 0.95),
        statistics.median(rtfs), n * codes * SECONDS_PER_CODE / wall, peak_bytes(device),
    )  # fmt: skip


def batched(
    engine: XttsEngine, ids: list[int], n: int, codes: int, first: int, fixed: bool = False
) -> Row:
    """All ``n`` streams in one decoder; ``fixed`` runs the steps in the graphs' fixed shapes
    (captured up front on CUDA: the capture time is kept apart, not timed)."""
    latent = engine.speaker(SPEAKER).gpt_cond_latent
    cfg = engine.config.gpt
    prompt = cfg.num_conditioning_latents + len(ids) + 3
    device = engine.model.device
    reset_peak(device)
    decoder = BatchDecoder(engine.model.gpt, n, max_positions=prompt + codes, decode_graphs=fixed)
    capture_s = None
    if decoder.graphs is not None and decoder.graphs.capture:
        started = time.perf_counter()
        decoder.graphs.capture_all()
        capture_s = now(device) - started
    params = SamplingParams(seed=0, min_new_codes=codes, max_new_codes=codes)
    t0 = time.perf_counter()
    streams = [decoder.add(latent, ids, params) for _ in range(n)]
    firsts: dict[int, float] = {}
    while decoder.active:
        for out in decoder.step():
            if len(out.stream.codes) == first:
                firsts[out.stream.id] = time.perf_counter() - t0
    wall = now(device) - t0
    assert all(len(s.codes) == codes for s in streams)
    rtf = wall / (codes * SECONDS_PER_CODE)  # every stream runs from t0 to the end
    values = list(firsts.values())
    return Row(
        "batched, fixed shapes" if fixed else "batched", n, statistics.median(values),
        percentile(values, 0.95), rtf, n * codes * SECONDS_PER_CODE / wall, peak_bytes(device),
        capture_s,
    )  # fmt: skip


@dataclass(frozen=True)
class Streams:
    """N streams that all started at one instant: per stream, seconds from that instant to its
    first audio and to its end, and the seconds of audio it made; the peak memory of the run."""

    firsts: list[float]
    ends: list[float]
    audio: list[float]
    peak: int | None

    @property
    def wall(self) -> float:
        return max(self.ends)

    def line(self, label: str) -> str:
        """The row of the side-by-side table."""
        rtf = statistics.median(e / a for e, a in zip(self.ends, self.audio, strict=True))
        return (
            f"| {label} | {len(self.ends)} | {statistics.median(self.firsts):.3f} / "
            f"{percentile(self.firsts, 0.95):.3f} | {rtf:.2f} | "
            f"{sum(self.audio) / self.wall:.2f} | {mib(self.peak)} |"
        )


@dataclass(frozen=True)
class PipelineRun:
    """One scheduler run: its streams and the time spent in the HiFi-GAN generator."""

    streams: Streams
    vocode_s: float
    calls: int


#: Prefill budget of the pipeline runs: every stream prefills in the first step, so all N start
#: together and their chunks fall due in the same steps (the case batched vocoding is for; with
#: a small budget the starts are staggered and the chunks of different streams rarely coincide).
PREFILL_ALL = 1 << 16

#: Vocoding modes of the pipeline table: (label, batch_vocoding, vocode_max_padding). The
#: scheduler's default (per job on a CPU, batched with padding on a GPU) gives the "ours, batched"
#: rows of the side-by-side table.
VOCODING = [
    ("per job", False, 0.0),
    ("batched, equal sizes", True, 0.0),
    ("batched, pad <= 25%", True, 0.25),
]


def scheduled(
    engine: XttsEngine, n: int, codes: int, batch: bool = True, max_padding: float = 0.25
) -> PipelineRun:
    """N jobs of TEXT submitted at once to a scheduler (default StreamOptions); each job's first
    audio and end. Forward hooks on the HiFi-GAN generator time its calls."""
    voice = engine.speaker(SPEAKER)
    params = SamplingParams(seed=0, min_new_codes=codes, max_new_codes=codes)
    device = engine.model.device
    generator = engine.model.hifigan_decoder.waveform_decoder
    started: list[float] = []
    spent: list[float] = []
    hooks = [
        generator.register_forward_pre_hook(lambda *_: started.append(time.perf_counter())),
        generator.register_forward_hook(lambda *_: spent.append(now(device) - started[-1])),
    ]
    try:
        reset_peak(device)
        scheduler = BatchScheduler(
            engine, max_streams=n, prefill_chunk=PREFILL_ALL, batch_vocoding=batch,
            vocode_max_padding=max_padding,
        )  # fmt: skip
        t0 = time.perf_counter()
        offsets, jobs = [], []
        for _ in range(n):  # a chunk's elapsed_s counts from its job's submit
            offsets.append(time.perf_counter() - t0)
            jobs.append(
                scheduler.submit(
                    TEXT, "en", voice, params, options=StreamOptions(), split_text=False
                )
            )
        firsts, ends, audio = [], [], []
        with scheduler:
            for offset, job in zip(offsets, jobs, strict=True):
                chunks = list(job)  # samples on the host: the device has finished them
                firsts.append(offset + next(c.elapsed_s for c in chunks if c.samples.size))
                ends.append(offset + chunks[-1].elapsed_s)
                audio.append(sum(c.samples.size for c in chunks) / engine.sample_rate)
        peak = peak_bytes(device)
    finally:
        for hook in hooks:
            hook.remove()
    return PipelineRun(Streams(firsts, ends, audio, peak), sum(spent), len(spent))


def reference_streams(system: System, n: int, codes: int, device: torch.device) -> Streams:
    """The reference server's answer to N clients at once: one model streams them one after
    another, so stream k starts when stream k-1 ends; times run from the common arrival."""
    reset_peak(device)
    t0 = time.perf_counter()
    firsts, ends, audio = [], [], []
    for _ in range(n):
        torch.manual_seed(0)
        first, samples = 0.0, 0
        for chunk in system.stream(codes):  # numpy chunks: the device has finished them
            if chunk.size and not first:
                first = time.perf_counter() - t0
            samples += chunk.size
        firsts.append(first)
        ends.append(time.perf_counter() - t0)
        audio.append(samples / RATE)
    return Streams(firsts, ends, audio, peak_bytes(device))


def load_reference(checkpoint: Path, codes: int, device: torch.device) -> System:
    """bench_core's reference system, moved to ``device`` right after coqui loads it (coqui
    loads on the CPU; ``inference_stream`` moves its inputs to the model's device). It stays in
    fp32, as the reference server runs it."""
    from TTS.tts.models.xtts import Xtts  # type: ignore[import-not-found,import-untyped,unused-ignore]

    if device.type == "cpu":
        return reference_system(checkpoint, codes)
    load = Xtts.load_checkpoint

    def load_then_move(self: torch.nn.Module, *args: object, **kwargs: object) -> None:
        load(self, *args, **kwargs)
        self.to(device)

    Xtts.load_checkpoint = load_then_move
    try:
        return reference_system(checkpoint, codes)
    finally:
        Xtts.load_checkpoint = load


#: Generator frames of a steady-state window: a 20-code chunk plus 13 frames of context each side.
WINDOW_FRAMES = 113


def vocoder_only(
    engine: XttsEngine, n: int, repeats: int, budget_s: float = 5.0
) -> tuple[float, float, float]:
    """Seconds to vocode ``n`` windows one call each, in one call of equal rows, and in one call
    where every other row is a 6-code first chunk (37 frames) padded: the best of up to
    ``repeats`` runs, fewer once the runs of one variant have taken ``budget_s`` (on a CPU, 64
    windows take minutes a run)."""
    generator = engine.model.hifigan_decoder.waveform_decoder
    device, dtype = generator.conv_pre.weight.device, generator.conv_pre.weight.dtype
    width = generator.conv_pre.in_channels
    rng = torch.Generator(device="cpu").manual_seed(0)
    frames = torch.randn(n, width, WINDOW_FRAMES, generator=rng).to(device, dtype)
    g = engine.speaker(SPEAKER).speaker_embedding.to(device, dtype).repeat(n, 1, 1)
    lengths = [WINDOW_FRAMES if i % 2 == 0 else 37 for i in range(n)]

    def best(run: Callable[[], object]) -> float:
        times: list[float] = []
        while len(times) < repeats and sum(times) < budget_s:
            t = time.perf_counter()
            run()
            times.append(now(device) - t)
        return min(times)

    with torch.inference_mode():
        alone = best(lambda: [generator(frames[i : i + 1], g[i : i + 1]) for i in range(n)])
        together = best(lambda: generator(frames, g))
        padded = best(lambda: generator(frames, g, lengths))
    return alone, together, padded


def gpt_table(
    engine: XttsEngine, ids: list[int], streams: list[int], codes: int, first: int,
    max_sequential: int,
) -> None:  # fmt: skip
    print(
        f"| mode | streams | first {first} codes p50 / p95 s | RTF p50 | audio s per s | peak MiB |"
    )
    print("|---|---|---|---|---|---|")
    captures: dict[int, float] = {}
    for n in streams:
        if n > max_sequential:
            print(f"| one-at-a-time | {n} | not run: N > --max-sequential | | | |")
        for row in (
            *([one_at_a_time(engine, ids, n, codes, first)] if n <= max_sequential else []),
            batched(engine, ids, n, codes, first),
            batched(engine, ids, n, codes, first, fixed=True),
        ):
            print(
                f"| {row.mode} | {row.streams} | {row.first_p50:.3f} / {row.first_p95:.3f} | "
                f"{row.rtf_p50:.2f} | {row.audio_per_s:.1f} | {mib(row.peak)} |",
                flush=True,
            )
            if row.capture_s is not None:
                captures[n] = row.capture_s
    if captures:
        print(
            "CUDA graph capture before the fixed-shape rows (not timed above), s: "
            + ", ".join(f"N={n} {s:.2f}" for n, s in captures.items())
        )


def vocoder_table(engine: XttsEngine, streams: list[int]) -> None:
    print(
        f"\nHiFi-GAN alone: N windows of {WINDOW_FRAMES} frames (a 20-code chunk), "
        "best of up to 5 runs, s"
    )
    print("| windows | one call each | one batched call | batched, half padded from 37 |")
    print("|---|---|---|---|")
    for n in streams:
        alone, together, padded = vocoder_only(engine, n, repeats=5)
        print(f"| {n} | {alone:.3f} | {together:.3f} | {padded:.3f} |", flush=True)


def pipeline_table(engine: XttsEngine, streams: list[int], codes: int) -> dict[int, Streams]:
    """Print the pipeline table; return the default-mode runs (the side-by-side "ours" rows)."""
    print("\nWhole pipeline through BatchScheduler (GPT + HiFi-GAN), default StreamOptions")
    print(
        "| vocoding | streams | first audio p50 / p95 s | audio s per s | vocoding share "
        "| generator calls | peak MiB |"
    )
    print("|---|---|---|---|---|---|---|")
    scheduled(engine, 1, 8)  # warm-up
    default = VOCODING[2 if engine.model.device.type == "cuda" else 0][0]
    ours: dict[int, Streams] = {}
    for n in streams:
        for label, batch, max_padding in VOCODING:
            run = scheduled(engine, n, codes, batch, max_padding)
            s = run.streams
            print(
                f"| {label} | {n} | {statistics.median(s.firsts):.3f} / "
                f"{percentile(s.firsts, 0.95):.3f} | {sum(s.audio) / s.wall:.2f} | "
                f"{run.vocode_s / s.wall:.0%} | {run.calls} | {mib(s.peak)} |",
                flush=True,
            )
            if label == default:
                ours[n] = s
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["tiny", "mid", "release"], default="mid")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--codes", type=int, default=60)
    parser.add_argument("--first-chunk", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument(
        "--max-processes", type=int, default=16,
        help="largest N the one-stream-per-process row runs (N processes load N models)",
    )  # fmt: skip
    parser.add_argument(
        "--max-sequential", type=int, default=1 << 30,
        help="largest N the one-at-a-time and reference rows run (their N-th stream waits for "
        "N-1 whole streams, so their time grows with N squared); default: every N",
    )  # fmt: skip
    parser.add_argument("--skip-reference", action="store_true", help="no coqui-tts rows")
    args = parser.parse_args()
    if min(args.streams) < 1 or args.codes < args.first_chunk or args.first_chunk < 1:
        sys.exit("--streams must be >= 1 and 1 <= --first-chunk <= --codes")

    checkpoint, reference_copy = ensure_checkpoint(ROOT / ".cache" / "bench" / args.size, args.size)
    engine = XttsEngine.from_pretrained(checkpoint, device=args.device, dtype=args.dtype)
    device = engine.model.device
    ids = engine.tokenizer.encode(TEXT, "en")
    batched(engine, ids, 1, 8, 1)  # warm-up
    print(
        f"{args.size} model, {device} {args.dtype}, {args.codes} codes per stream "
        f"({args.codes * SECONDS_PER_CODE:.1f} s of audio), torch threads "
        f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    gpt_table(engine, ids, args.streams, args.codes, args.first_chunk, args.max_sequential)
    vocoder_table(engine, args.streams)
    ours = pipeline_table(engine, args.streams, args.codes)
    del engine  # the rows below hold their own models: free ours for their memory columns
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

    pools: dict[int, Streams] = {}
    loads: dict[int, list[float]] = {}
    for n in (n for n in args.streams if n <= args.max_processes):
        print(f"one stream per process: starting {n} workers", file=sys.stderr, flush=True)
        run = one_stream_per_process(
            checkpoint, args.device, args.dtype, TEXT, SPEAKER, n, args.codes
        )
        pools[n] = Streams(
            [w.first_s for w in run.workers], [w.end_s for w in run.workers],
            [w.audio_s for w in run.workers], run.peak_bytes,
        )  # fmt: skip
        loads[n] = [w.load_s for w in run.workers]

    references: dict[int, Streams] = {}
    skipped = ""
    if args.skip_reference:
        skipped = "reference rows skipped (--skip-reference)"
    elif util.find_spec("TTS") is None:
        skipped = "reference rows skipped: coqui-tts is not importable in this environment"
    else:
        reference = load_reference(reference_copy, args.codes, device)
        for _ in reference.stream(20):  # warm-up, as bench_core gives it
            pass
        for n in (n for n in args.streams if n <= args.max_sequential):
            print(f"reference: {n} streams one after another", file=sys.stderr, flush=True)
            references[n] = reference_streams(reference, n, args.codes, device)

    print(
        "\nSide by side: N clients arrive at once; every time runs from that instant "
        f"({args.codes} codes per stream, default chunking on every side)"
    )
    print("| system | streams | first audio p50 / p95 s | RTF p50 | audio s per s | peak MiB |")
    print("|---|---|---|---|---|---|")
    for n in args.streams:
        print(ours[n].line("ours, batched"))
        if n in pools:
            print(pools[n].line("ours, one stream per process"))
        else:
            print(f"| ours, one stream per process | {n} | not run: N > --max-processes | | | |")
        if n in references:
            print(references[n].line("reference (coqui), one model, one stream at a time"))
        elif not skipped:
            print(f"| reference (coqui) | {n} | not run: N > --max-sequential | | | |")
    if skipped:
        print(skipped)
    if loads:
        print(
            "one-stream-per-process load (not timed above), median / max s: "
            + ", ".join(
                f"N={n} {statistics.median(v):.1f} / {max(v):.1f}" for n, v in loads.items()
            )
        )
    if references:
        print(f"reference load (not timed above): {reference.load_s:.1f} s")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
