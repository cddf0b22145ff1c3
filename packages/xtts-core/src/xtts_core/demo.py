"""``python -m xtts_core.demo``: clone a voice and stream one sentence to a WAV file.

The quickest end-to-end check of an install. Without ``--model-dir`` (or ``XTTS_MODEL_DIR``) it
writes a small randomly initialised checkpoint first, so it runs anywhere without downloads —
random weights make noise, not speech. Without ``--reference`` it synthesises a short reference
clip and clones from that file, so the cloning path is exercised too. It prints time to first
audio and the real-time factor of the streamed synthesis.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from pathlib import Path

from xtts_core.errors import XttsError

DEFAULT_TEXT = (
    "The quick brown fox jumps over the lazy dog while the sun sets slowly behind the hills."
)
RANDOM_DIR = Path(".cache") / "xtts-demo" / "random-tiny"
REAL_WEIGHTS_HINT = (
    "Random weights make noise, not speech. For real speech, download config.json, model.pth, "
    "vocab.json and speakers_xtts.pth from the coqui/XTTS-v2 model repository (Coqui Public Model "
    "License) into a folder and run: hatch run demo --model-dir FOLDER"
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="xtts-demo", description=__doc__.splitlines()[0])
    p.add_argument(
        "--model-dir",
        type=Path,
        default=os.environ.get("XTTS_MODEL_DIR"),
        help="checkpoint folder (config.json, model.pth, vocab.json[, speakers_xtts.pth])",
    )
    p.add_argument("--text", default=DEFAULT_TEXT)
    p.add_argument("--language", default="en")
    p.add_argument(
        "--reference",
        type=Path,
        action="append",
        help="reference audio to clone (repeatable); default: a generated clip",
    )
    p.add_argument("--output", "-o", type=Path, default=Path("demo.wav"))
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if present)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16", "int8"])
    p.add_argument(
        "--max-codes",
        type=int,
        default=None,
        help="cap on audio codes (46 ms each); random weights rarely stop on their own",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)  # fmt: skip


def _synthetic_reference(path: Path, seconds: float = 4.0, rate: int = 22050) -> Path:
    """A voiced-sounding clip (harmonics with a gliding pitch and a little noise)."""
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 30 * np.sin(2 * math.pi * 0.5 * t)
    phase = 2 * math.pi * np.cumsum(pitch) / rate
    wav = sum(np.sin(k * phase) / k for k in range(1, 8)) * (
        0.5 + 0.5 * np.sin(2 * math.pi * 3 * t) ** 2
    )
    wav = 0.3 * wav / np.abs(wav).max() + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav.astype(np.float32), rate)
    return path


def run(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    args = _parse(argv)
    from xtts_core._extras import require_inference

    require_inference("the demo")
    import numpy as np
    import soundfile as sf

    from xtts_core.engine import StreamOptions, XttsEngine
    from xtts_core.generate import SamplingParams
    from xtts_core.random_checkpoint import write_random_checkpoint

    random_weights = args.model_dir is None
    model_dir = args.model_dir or RANDOM_DIR
    if random_weights and not (model_dir / "model.pth").exists():
        print(f"no --model-dir given: writing a random tiny checkpoint to {model_dir}")
        write_random_checkpoint(model_dir, "tiny")
    t0 = time.perf_counter()
    engine = XttsEngine.from_pretrained(model_dir, args.device, args.dtype)
    print(f"loaded {model_dir} in {time.perf_counter() - t0:.2f} s on {engine.model.device}")

    references = args.reference or [_synthetic_reference(model_dir / "reference.wav")]
    t0 = time.perf_counter()
    voice = engine.clone_voice(references)
    print(
        f"cloned a voice from {', '.join(map(str, references))} in {time.perf_counter() - t0:.2f} s"
    )

    cap = args.max_codes or (120 if random_weights else None)
    params = SamplingParams(seed=args.seed, max_new_codes=cap)
    chunks = []
    for chunk in engine.stream(args.text, args.language, voice, params, options=StreamOptions()):
        chunks.append(chunk)
    audio = np.concatenate([c.samples for c in chunks])
    sf.write(args.output, audio, engine.sample_rate)
    seconds = audio.size / engine.sample_rate
    total = chunks[-1].elapsed_s
    print(f"wrote {args.output}: {seconds:.2f} s of audio in {len(chunks)} chunks")
    print(
        f"time to first audio: {chunks[0].elapsed_s:.3f} s   real-time factor: {total / max(seconds, 1e-9):.2f}"
    )
    if random_weights:
        print(REAL_WEIGHTS_HINT)
    return 0


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        sys.exit(run())
    except XttsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
