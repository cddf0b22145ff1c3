"""Text front end throughput: normalisation + tokenisation, characters per second, per language.

Ours (``XttsTokenizer.encode``, which normalises first) and, when coqui-tts is importable, the
reference's ``VoiceBpeTokenizer.encode``, both over the same character-level vocab file written
by ``write_vocab`` and the same text: the parity corpus of each language, encoded sentence
by sentence. One untimed warm-up, then the best of ``--runs`` timed
passes. Run: ``hatch run bench:setup && hatch run bench:python bench/bench_text.py`` or, with the
reference venv, ``PYTHONPATH=packages/xtts-core/src:tests/core/parity python bench/bench_text.py``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "core" / "parity"))

from text_corpus import corpus  # noqa: E402

from xtts_core.text.normalize import NORMALIZED_LANGUAGES  # noqa: E402
from xtts_core.text.tokenizer import XttsTokenizer  # noqa: E402
from xtts_core.text.vocab import write_vocab  # noqa: E402


def best_rate(
    encode: Callable[[str, str], object], lang: str, texts: tuple[str, ...], runs: int
) -> float:
    chars = sum(len(t) for t in texts)
    for text in texts:  # warm-up
        encode(text, lang)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for text in texts:
            encode(text, lang)
        best = min(best, time.perf_counter() - start)
    return chars / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)  # the reference warns on texts over its char limit

    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.json"
        write_vocab(vocab, 300)
        ours = XttsTokenizer.from_file(vocab)
        try:
            from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

            ref: VoiceBpeTokenizer | None = VoiceBpeTokenizer(vocab_file=vocab)
        except ImportError:
            ref = None

        print(f"{'lang':<5} {'chars':>6} {'ours chars/s':>13} {'ref chars/s':>12} {'ratio':>6}")
        for lang in NORMALIZED_LANGUAGES:
            texts = corpus(lang)
            mine = best_rate(ours.encode, lang, texts, args.runs)
            theirs = best_rate(ref.encode, lang, texts, args.runs) if ref is not None else None
            ref_col = f"{theirs:>12,.0f}" if theirs else f"{'-':>12}"
            ratio = f"{mine / theirs:>6.2f}" if theirs else f"{'-':>6}"
            chars = sum(len(t) for t in texts)
            print(f"{lang:<5} {chars:>6} {mine:>13,.0f} {ref_col} {ratio}")


if __name__ == "__main__":
    main()
