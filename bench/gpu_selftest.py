"""Check the CUDA fast paths of the batched decoder on a real GPU, and time them.

Why: CI has no GPU, so the CUDA graph replay of :mod:`xtts_core.decode_graphs` is proven on CPU
only as its fixed-shape eager twin. On a machine with a GPU this script checks what only a GPU
can show and prints one markdown table per check:

1. **Same codes**: seeded streams joining at different steps give the same codes, and latents
   within rounding, through replayed graphs as through the dynamic eager steps (fp32, and the
   ``--dtype`` under test).
2. **Host syncs per step**: with ``torch.cuda.set_sync_debug_mode("warn")`` every operation
   that waits for the GPU warns; a graph step should have exactly one, reading the drawn codes.
3. **Capture**: how many graphs ``--streams`` slots need, how long capturing (and checking) them
   takes, and the GPU memory of the pool and the graphs.
4. **Step time** per batch size, fixed-shape steps (graph replays on CUDA) against the dynamic
   eager ones, the median of ``--steps`` whole steps (sampling included).

On CPU it runs too (checks 1 and 4 on the eager fixed-shape steps, the rest marked n/a), which is
how this script itself is tested. Random weights: only agreement and timings mean anything.

Run: ``python bench/gpu_selftest.py --size release --device cuda --dtype bf16 --streams 128``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import torch

from bench_core import ensure_checkpoint
from xtts_core.batch import BatchDecoder, BatchedStream
from xtts_core.engine import XttsEngine
from xtts_core.generate import SamplingParams

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "Hello there, how are you today?",
    "A much longer sentence, so that its prompt has many more positions than the others.",
    "Short one.",
]


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def decode(
    engine: XttsEngine, graphs: bool, codes: int, slots: int
) -> tuple[list[list[int]], list[torch.Tensor], BatchDecoder]:
    """Three seeded streams joining at steps 0, 0 and 7; their codes and stacked latents."""
    decoder = BatchDecoder(engine.model.gpt, slots, decode_graphs=graphs)
    decoder.capture_graphs()
    latent = engine.speaker("Random Speaker").gpt_cond_latent
    ids = [engine.tokenizer.encode(text, "en") for text in TEXTS]
    params = [SamplingParams(seed=i, min_new_codes=codes, max_new_codes=codes) for i in range(3)]
    streams: list[BatchedStream] = []
    latents: dict[int, list[torch.Tensor]] = {}
    step = 0
    while step <= 7 or decoder.active:
        if step in (0, 7):
            for i in (0, 1) if step == 0 else (2,):
                streams.append(decoder.add(latent, ids[i], params[i]))
        for out in decoder.step():
            latents.setdefault(out.stream.id, []).append(out.latent)
        step += 1
    return [s.codes for s in streams], [torch.stack(latents[s.id]) for s in streams], decoder


def same_codes(engine: XttsEngine, codes: int, slots: int) -> str:
    eager_codes, eager_latents, _ = decode(engine, False, codes, slots)
    graph_codes, graph_latents, decoder = decode(engine, True, codes, slots)
    replayed = decoder.graphs is not None and decoder.graphs.capture
    worst = max(
        float((a - b).abs().max()) for a, b in zip(eager_latents, graph_latents, strict=True)
    )
    agree = sum(a == b for a, b in zip(eager_codes, graph_codes, strict=True))
    return (
        "| steps | streams with equal codes | max latent diff |\n|---|---|---|\n"
        f"| {'CUDA graphs' if replayed else 'fixed-shape eager'} vs dynamic | "
        f"{agree} / {len(eager_codes)} | {worst:.2e} |"
    )


def syncs_per_step(engine: XttsEngine, streams: int, steps: int) -> str:
    if not torch.cuda.is_available():
        return "host syncs per step: n/a on cpu"
    decoder = filled(engine, streams, graphs=True)
    rows = ["| streams | steps | synchronizing operations | per step |", "|---|---|---|---|"]
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(steps):
                decoder.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    count = sum("synchroniz" in str(w.message) for w in caught)
    rows.append(f"| {streams} | {steps} | {count} | {count / steps:.2f} |")
    return "\n".join(rows)


def filled(engine: XttsEngine, streams: int, graphs: bool) -> BatchDecoder:
    """A decoder with ``streams`` long streams past their prefill (one slot each)."""
    decoder = BatchDecoder(engine.model.gpt, streams, prefill_chunk=1 << 16, decode_graphs=graphs)
    decoder.capture_graphs()
    latent = engine.speaker("Random Speaker").gpt_cond_latent
    ids = engine.tokenizer.encode(TEXTS[0], "en")
    limit = engine.config.gpt.max_new_codes
    added = [
        decoder.add(latent, ids, SamplingParams(seed=seed, min_new_codes=limit))
        for seed in range(streams)
    ]
    while any(stream.prefilling for stream in added):
        decoder.step()
    return decoder


def capture(engine: XttsEngine, slots: int) -> str:
    if not torch.cuda.is_available():
        return "capture: n/a on cpu"
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    decoder = BatchDecoder(engine.model.gpt, slots, decode_graphs=True)
    pool = torch.cuda.memory_allocated() - before
    started = time.perf_counter()
    ok = decoder.capture_graphs()
    seconds = time.perf_counter() - started
    graphs = decoder.graphs.captured if decoder.graphs is not None else 0
    after = torch.cuda.memory_allocated() - before - pool
    return (
        "| slots | graphs | captured and checked in | KV pool | graphs' own memory | on |\n"
        "|---|---|---|---|---|---|\n"
        f"| {slots} | {graphs} | {seconds:.2f} s | {pool / 2**20:.0f} MiB | "
        f"{after / 2**20:.0f} MiB | {ok} |"
    )


def step_times(engine: XttsEngine, sizes: list[int], steps: int) -> str:
    rows = ["| streams | dynamic step ms | fixed-shape step ms | speed-up |", "|---|---|---|---|"]
    for n in sizes:
        medians = []
        for graphs in (False, True):
            decoder = filled(engine, n, graphs)
            times = []
            for _ in range(steps):
                sync()
                started = time.perf_counter()
                decoder.step()
                sync()
                times.append(time.perf_counter() - started)
            medians.append(statistics.median(times) * 1000)
            del decoder
        rows.append(
            f"| {n} | {medians[0]:.2f} | {medians[1]:.2f} | {medians[0] / medians[1]:.2f}x |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["tiny", "mid", "release"], default="release")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--streams", type=int, default=128, help="slots for the capture check")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--codes", type=int, default=40)
    args = parser.parse_args()
    directory, _ = ensure_checkpoint(ROOT / ".cache" / "bench" / args.size, args.size)
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"# {args.size} model on {name}, torch {torch.__version__}\n")
    for dtype in dict.fromkeys(["fp32", args.dtype]):
        engine = XttsEngine.from_pretrained(directory, device=args.device, dtype=dtype)
        print(f"## {dtype}\n\n{same_codes(engine, args.codes, 4)}\n", flush=True)
        if dtype == args.dtype:
            print(syncs_per_step(engine, 8, args.steps), end="\n\n", flush=True)
            print(capture(engine, args.streams), end="\n\n", flush=True)
            print(step_times(engine, args.sizes, args.steps), flush=True)
        del engine


if __name__ == "__main__":
    main()
