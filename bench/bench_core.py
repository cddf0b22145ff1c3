"""CPU benchmark of our XTTS-v2 streaming engine against coqui-tts 0.28 (the reference), one run.

Why: our targets are a time to first audio <= 0.25x and a real-time factor <= 0.5x the
reference's on a 2-core CPU. The reference re-vocodes the whole audio prefix at every chunk
(quadratic) and has no small first chunk; we vocode incrementally and emit a small first chunk.
Our rows run the one decode path the server runs (a batched decoder, here with one slot).

Setup (shared/spec/xtts-reference.md §3.3): a release-size random-weight checkpoint (cached), the
20-word sentence, the checkpoint's "Random Speaker", codes forced to ``--codes`` (stop code off,
so both sides make the same audio length), torch.manual_seed(0), torch's default threads. All systems are
loaded first; each gets one short untimed warm-up, then the ``--runs`` timed runs go round-robin
over the systems (so a busy machine slows all alike); the median is reported.

Columns: load s (construct + load weights), TTFA s (first chunk yielded), 1st chunk s (audio in
that chunk: a tiny first chunk buys TTFA, not continuous playback), total s (stream
exhausted), audio s, RTF (total / audio), GPT ms/code (codes alone, prefill included, no vocoder:
our CodeStream, the server's BatchDecoder with one slot; the reference's ``gpt.get_generator``
driven as ``inference_stream`` drives it), vocoder s (time inside the vocoder during the stream,
instrumented: the reference's ``hifigan_decoder`` calls, our ``HifiganGenerator.forward``), and
TTFA / RTF ratios to the reference. An instrumented method that a timed run never calls stops the
benchmark with an error (a column of zeros would measure nothing).
Random weights make noise, so only timings mean anything; the one audio check is that our stream
equals our one-shot synthesis. This is a benchmark, not a test: see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata, util
from pathlib import Path
from typing import Any

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # coqui drives HF generate noisily

import numpy as np
import torch

import xtts_core.chunking as chunking_mod
from xtts_core.engine import StreamOptions, XttsEngine
from xtts_core.generate import CodeStream, SamplingParams
from xtts_core.kv_cache import PrefixCache
from xtts_core.model.hifigan import HifiganGenerator
from xtts_core.random_checkpoint import write_random_checkpoint

TEXT = (
    "The quick brown fox jumps over the lazy dog while the sun sets slowly behind the distant "
    "purple mountains tonight."
)
SPEAKER = "Random Speaker"
RATE = 24000
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    system: str
    load_s: float
    ttfa_s: float
    total_s: float
    audio_s: float
    gpt_ms_per_code: float
    vocoder_s: float
    first_chunk_s: float  # seconds of audio in the first chunk
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rtf(self) -> float:
        return self.total_s / self.audio_s


class Meter:
    """Accumulates wall time spent inside wrapped calls, and counts them."""

    seconds = 0.0
    calls = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t
                self.calls += 1

        return timed

    def require(self, what: str) -> None:
        """Fail unless a wrapped call ran: an instrument that is never hit measures nothing."""
        if not self.calls:
            raise RuntimeError(f"{what} was instrumented but never called during the run")


@contextlib.contextmanager
def patched(owner: Any, name: str, meter: Meter) -> Iterator[Meter]:
    """Wrap ``owner.name`` with ``meter`` for the duration of the block."""
    own = name in vars(owner)  # a class/module attribute, or one looked up through the class
    original = getattr(owner, name)
    setattr(owner, name, meter.wrap(original))
    try:
        yield meter
    finally:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


def _name(thing: Any) -> str:
    return thing if isinstance(thing, str) else getattr(thing, "__name__", type(thing).__name__)


def timed_stream(chunks: Iterable[np.ndarray]) -> tuple[float, float, list[np.ndarray]]:
    """(time to the first non-empty chunk, total time, the non-empty chunks) of an iterator."""
    t0, ttfa, parts = time.perf_counter(), 0.0, []
    for chunk in chunks:
        if chunk.size:
            ttfa = ttfa or time.perf_counter() - t0
            parts.append(chunk)
    return ttfa, time.perf_counter() - t0, parts


def ensure_checkpoint(directory: Path, size: str) -> tuple[Path, Path]:
    """Write (or reuse) the random checkpoint and a copy for coqui: (ours, the copy)."""
    marker = "bench-checkpoint.json"
    stamp = directory / marker
    if not (stamp.is_file() and json.loads(stamp.read_text())["size"] == size):
        print(f"writing a random {size} checkpoint to {directory} ...", flush=True)
        t = time.perf_counter()
        tmp = directory.with_name(directory.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        write_random_checkpoint(tmp, size, seed=0)  # type: ignore[arg-type]
        (tmp / marker).write_text(json.dumps({"size": size, "seed": 0, "built": time.time()}))
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)
        print(f"  written in {time.perf_counter() - t:.1f} s", flush=True)
    copy = directory.with_name(directory.name + "-ref")  # coqui gets its own copy of the files
    if not (copy / marker).is_file() or (copy / marker).read_text() != stamp.read_text():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(directory, copy)
    return directory, copy


@dataclass
class System:
    """One row: how to stream ``n`` codes, what to instrument, how to time codes alone."""

    name: str
    load_s: float
    stream: Callable[[int], Iterator[np.ndarray]]
    vocoder: tuple[Any, str]  # (owner, attribute) whose calls are the vocoder
    gpt_ms: Callable[[], float]  # one GPT-only run: ms per code, prefill included
    one_shot: Callable[[], float]  # one vocoder pass over all the latents: seconds
    denoises: bool = False  # the stream runs noise reduction (chunking._denoise)


def reference_system(ckpt: Path, codes: int) -> System:
    from TTS.tts.configs.xtts_config import XttsConfig as CoquiConfig  # type: ignore[import-not-found,import-untyped,unused-ignore]
    from TTS.tts.models.xtts import Xtts  # type: ignore[import-not-found,import-untyped,unused-ignore]

    t = time.perf_counter()
    cfg = CoquiConfig()
    cfg.load_json(str(ckpt / "config.json"))
    ref = Xtts(cfg)
    ref.load_checkpoint(cfg, checkpoint_dir=str(ckpt), eval=True)
    load_s = time.perf_counter() - t
    voice = ref.speaker_manager.speakers[SPEAKER]
    lat, emb = voice["gpt_cond_latent"], voice["speaker_embedding"]

    def stream(n: int) -> Iterator[np.ndarray]:
        for wav in ref.inference_stream(
            TEXT, "en", lat, emb, stream_chunk_size=20, min_new_tokens=n, max_new_tokens=n
        ):
            yield wav.cpu().numpy()

    @torch.inference_mode()
    def gpt_ms() -> float:  # inference_stream's code loop with the vocoder left out
        torch.manual_seed(0)
        t = time.perf_counter()
        ids = torch.IntTensor(ref.tokenizer.encode(TEXT.strip().lower(), lang="en"))[None]
        gen = ref.gpt.get_generator(
            fake_inputs=ref.gpt.compute_embeddings(lat, ids), top_k=50, top_p=0.85,
            temperature=0.75, do_sample=True, num_beams=1, num_return_sequences=1,
            length_penalty=1.0, repetition_penalty=10.0, output_attentions=False,
            output_hidden_states=True, return_dict_in_generate=True,
            min_new_tokens=codes, max_new_tokens=codes,
        )  # fmt: skip
        n = sum(1 for _ in gen)
        return (time.perf_counter() - t) / n * 1e3

    @torch.inference_mode()
    def one_shot() -> float:
        x = torch.randn(1, codes, lat.shape[-1])
        t = time.perf_counter()
        ref.hifigan_decoder(x, g=emb)
        return time.perf_counter() - t

    name = "reference (coqui, chunk 20)"
    return System(name, load_s, stream, (ref.hifigan_decoder, "forward"), gpt_ms, one_shot)


def our_systems(
    ckpt: Path, dtype: str, codes: int, variants: dict[str, StreamOptions],
    cold: frozenset[str] = frozenset(),
) -> tuple[list[System], XttsEngine]:  # fmt: skip
    """One system per streaming variant of one loaded engine (they share GPT timings). The
    variants named in ``cold`` speak each sentence as the voice's first (an empty prefix
    cache); the others reuse the voice's conditioning keys and values, as every later sentence
    of a voice does."""
    t = time.perf_counter()
    eng = XttsEngine.from_pretrained(ckpt, "cpu", dtype)
    load_s = time.perf_counter() - t
    voice = eng.speaker(SPEAKER)
    ids = eng.tokenizer.encode(TEXT, "en")

    def params(n: int) -> SamplingParams:
        return SamplingParams(seed=0, min_new_codes=n, max_new_codes=n)

    def gpt_ms() -> float:
        t = time.perf_counter()
        n = sum(1 for _ in CodeStream(eng.model.gpt, voice.gpt_cond_latent, ids, params(codes)))
        return (time.perf_counter() - t) / n * 1e3

    @torch.inference_mode()
    def one_shot() -> float:
        x = torch.randn(1, codes, eng.config.gpt.width)
        t = time.perf_counter()
        eng.model.hifigan_decoder(x, voice.speaker_embedding)
        return time.perf_counter() - t

    def streamer(opts: StreamOptions, cold: bool) -> Callable[[int], Iterator[np.ndarray]]:
        def stream(n: int) -> Iterator[np.ndarray]:
            if cold:  # the voice is new to the engine: its conditioning prefix is prefilled too
                eng.prefix_cache = PrefixCache()
            return (c.samples for c in eng.stream(TEXT, "en", voice, params(n), options=opts))

        return stream

    voc = (HifiganGenerator, "forward")
    systems = [
        System(k, load_s, streamer(o, k in cold), voc, gpt_ms, one_shot, o.denoise)
        for k, o in variants.items()
    ]
    return systems, eng


def measure(systems: list[System], codes: int, runs: int) -> list[Row]:
    """Warm every system up, then time the runs round-robin so machine noise hits all alike."""
    for s in systems:
        print(f"warming up: {s.name}", flush=True)
        timed_stream(s.stream(min(codes, 20)))
    samples: dict[str, list[tuple[float, ...]]] = {s.name: [] for s in systems}
    for r in range(runs):
        for s in systems:
            print(f"run {r + 1}/{runs}: {s.name}", flush=True)
            torch.manual_seed(0)
            voc, dn = Meter(), Meter()
            with patched(*s.vocoder, voc), patched(chunking_mod, "_denoise", dn):
                ttfa, total, parts = timed_stream(s.stream(codes))
            voc.require(f"{s.name}: the vocoder {'.'.join(map(_name, s.vocoder))}")
            if s.denoises:
                dn.require(f"{s.name}: chunking._denoise")
            audio = sum(c.size for c in parts) / RATE
            samples[s.name].append(
                (ttfa, total, audio, voc.seconds, parts[0].size / RATE, dn.seconds)
            )
    gpt: dict[Callable[[], float], list[float]] = {}
    for _ in range(runs):  # codes alone, once per distinct GPT
        for fn in dict.fromkeys(s.gpt_ms for s in systems):
            gpt.setdefault(fn, []).append(fn())
    rows = []
    for s in systems:
        med = [statistics.median(col) for col in zip(*samples[s.name], strict=True)]
        extra = {"denoise_s": med[5]} if med[5] else {}
        gpt_ms = statistics.median(gpt[s.gpt_ms])
        ttfa, total, audio, voc_s, first, _ = med
        rows.append(Row(s.name, s.load_s, ttfa, total, audio, gpt_ms, voc_s, first, extra))
    return rows


def stream_vs_one_shot(eng: XttsEngine, codes: int, opts: StreamOptions) -> float:
    """Max |stream - one-shot| for the same seed (our streaming is exact, not cross-faded)."""
    params = SamplingParams(seed=0, min_new_codes=codes, max_new_codes=codes)
    voice = eng.speaker(SPEAKER)
    chunks = eng.stream(TEXT, "en", voice, params, options=opts)
    streamed = np.concatenate([c.samples for c in chunks])
    whole = eng.synthesize(TEXT, "en", voice, params).wav
    if streamed.shape != whole.shape:
        return float("inf")
    return float(np.abs(streamed - whole).max())


def latent_error(ref: XttsEngine, other: XttsEngine, codes: int) -> float:
    """Max relative error of ``other``'s GPT latents against ``ref``'s when both are fed the
    same codes (sampled codes would diverge: random weights give near-uniform logits)."""
    voice = ref.speaker(SPEAKER)
    forced = torch.randint(0, 1024, (codes,), generator=torch.Generator().manual_seed(0)).tolist()
    params = SamplingParams(min_new_codes=codes, max_new_codes=codes)

    def latents(eng: XttsEngine) -> torch.Tensor:
        return eng.code_stream(TEXT, "en", voice, params).teacher_forced(forced)[0].float()

    exact = latents(ref)
    return float((latents(other) - exact).abs().max() / exact.abs().max())


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    versions = {}
    for dist in ("torch", "coqui-tts", "transformers", "xtts-core"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {
        "cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "versions": versions, "loadavg_start": os.getloadavg(),
    }  # fmt: skip


def table(rows: list[Row], ref: Row | None) -> str:
    head = ["system", "load s", "TTFA s", "1st chunk s", "total s", "audio s", "RTF",
            "GPT ms/code", "vocoder s", "TTFA ratio", "RTF ratio"]  # fmt: skip
    body = []
    for r in rows:
        ratios = [f"{r.ttfa_s / ref.ttfa_s:.3f}", f"{r.rtf / ref.rtf:.3f}"] if ref else ["-", "-"]
        body.append([r.system, f"{r.load_s:.2f}", f"{r.ttfa_s:.3f}", f"{r.first_chunk_s:.3f}",
                     f"{r.total_s:.2f}", f"{r.audio_s:.2f}", f"{r.rtf:.3f}",
                     f"{r.gpt_ms_per_code:.1f}", f"{r.vocoder_s:.2f}", *ratios])  # fmt: skip
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def fmt(line: list[str]) -> str:
        cells = zip(line, widths, strict=True)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join([fmt(head), "  ".join("-" * w for w in widths), *map(fmt, body)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--size", choices=["tiny", "mid", "release"], default="release")
    ap.add_argument("--checkpoint-dir", type=Path, help="default: .cache/bench/<size> in the repo")
    ap.add_argument("--codes", type=int, default=150, help="codes per sentence (min = max)")
    ap.add_argument("--runs", type=int, default=2, help="timed runs per system (median reported)")
    ap.add_argument(
        "--first-chunk", type=int, default=4, help="first_chunk_codes of low-latency rows"
    )
    ap.add_argument("--lookahead", type=int, default=4, help="lookahead_frames of low-latency rows")
    ap.add_argument("--skip-reference", action="store_true", help="ours only (no coqui-tts needed)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")  # coqui/transformers deprecation noise
    info = machine_info()
    print(f"cpu: {info['cpu']} ({info['cpu_count']} cpus, torch threads {info['torch_threads']}, "
          f"{info['cpu_capability']}); python {info['python']}; "
          + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
          + f"; load average {info['loadavg_start'][0]:.2f}", flush=True)  # fmt: skip
    if not args.skip_reference and util.find_spec("TTS") is None:
        sys.exit("coqui-tts is missing: run `hatch run bench:bench`, or pass --skip-reference")
    where = args.checkpoint_dir or ROOT / ".cache/bench" / args.size
    ours_dir, ref_dir = ensure_checkpoint(where, args.size)
    print(f"checkpoint: {ours_dir} ({args.size}); {args.codes} codes; {args.runs} runs", flush=True)

    systems = [reference_system(ref_dir, args.codes)] if not args.skip_reference else []
    # (a) exact streaming (every sample equals one-shot); (b) low latency: the newest frames are
    # emitted before their right context exists and cross-faded over 1024 samples, as coqui does.
    a = StreamOptions()
    b = StreamOptions(
        first_chunk_codes=args.first_chunk, lookahead_frames=args.lookahead, overlap_samples=1024
    )
    name_a = f"exact, first {a.first_chunk_codes}"
    name_b = f"low-latency, first {b.first_chunk_codes}"
    variants = {
        f"ours fp32 (a) {name_a}": a,
        f"ours fp32 (b) {name_b}": b,
        "ours fp32 (a) + denoise": StreamOptions(denoise=True),
        "ours fp32 (a), voice's first sentence": a,
    }
    cold = frozenset({"ours fp32 (a), voice's first sentence"})
    fp32, eng = our_systems(ours_dir, "fp32", args.codes, variants, cold)
    bf16, eng_bf16 = our_systems(
        ours_dir, "bf16", args.codes,
        {f"ours bf16 (c) {name_a}": a, f"ours bf16 (d) {name_b}": b},
    )  # fmt: skip
    int8, eng_int8 = our_systems(
        ours_dir, "int8", args.codes,
        {f"ours int8 (e) {name_a}": a, f"ours int8 (f) {name_b}": b},
    )  # fmt: skip
    print(
        "loaded: "
        + ", ".join(f"{s.name} {s.load_s:.1f} s" for s in systems + fp32[:1] + bf16[:1] + int8[:1])
    )
    rows = measure(systems + fp32 + bf16 + int8, args.codes, args.runs)
    ref = rows[0] if systems else None
    one_shot: dict[str, list[float]] = {"reference": [], "ours": []} if systems else {"ours": []}
    for _ in range(args.runs):
        for who, sysm in zip(one_shot, systems + fp32, strict=False):
            one_shot[who].append(sysm.one_shot())
    vocode = {who: statistics.median(v) for who, v in one_shot.items()}
    diff = {"exact (a)": stream_vs_one_shot(eng, args.codes, a),
            "low-latency (b)": stream_vs_one_shot(eng, args.codes, b)}  # fmt: skip

    by_name = {r.system: r for r in rows}
    plain, noisy = by_name[f"ours fp32 (a) {name_a}"], by_name["ours fp32 (a) + denoise"]
    print(f"\n{table(rows, ref)}\n")
    print(f"one-shot vocoder, {args.codes} latents: "
          + ", ".join(f"{who} {sec:.2f} s" for who, sec in vocode.items()))  # fmt: skip
    print(f"noise reduction (noisereduce on each chunk): {noisy.extra['denoise_s']:.3f} s "
          f"per sentence; total {noisy.total_s - plain.total_s:+.2f} s vs row (a)")  # fmt: skip
    print("stream vs one-shot synthesize, same seed, max |diff|: "
          + ", ".join(f"{k} {v:.3g}" for k, v in diff.items()))  # fmt: skip
    info["loadavg_end"] = os.getloadavg()
    precision = {
        name: latent_error(eng, other, args.codes)
        for name, other in (("bf16", eng_bf16), ("int8", eng_int8))
    }
    print("GPT latents vs fp32 on the same codes (teacher-forced), max rel err: "
          + ", ".join(f"{k} {v:.3g}" for k, v in precision.items()))  # fmt: skip
    print(f"load average at end: {info['loadavg_end'][0]:.2f}")
    if args.json:
        out = {
            "machine": info,
            "settings": {k: str(v) for k, v in vars(args).items()} | {"text": TEXT},
            "rows": [asdict(r) | {"rtf": r.rtf} for r in rows],
            "one_shot_vocoder_s": vocode,
            "stream_vs_one_shot_max_abs_diff": diff,
            "latents_vs_fp32_max_rel_err": precision,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
