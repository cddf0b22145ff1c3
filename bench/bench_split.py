"""Cost of the sentence splitters (issue 3, "Proof", "Benchmark": the splitter's added latency).

Why: the websocket service calls :class:`IncrementalSplitter.feed` for every text fragment an LLM
streams in, on the event loop's critical path, so its per-call cost must stay in microseconds;
:func:`split_sentences` runs once per one-shot request. Pure CPU, no model, no reference.

Prints: mean microseconds per ``feed`` call for a 2,000-character text fed in 5-character
fragments (median over ``--runs`` runs; also per language), and ``split_sentences`` throughput in
characters per second for English (the pipeline is built before timing; its one-off build time is
printed separately). A benchmark, not a test: nothing asserts a timing.

    hatch run python bench/bench_split.py            # or any env with xtts-core (+ spaCy)
"""

from __future__ import annotations

import argparse
import statistics
import time

from xtts_core.text.split import IncrementalSplitter, split_sentences

SAMPLES = {
    "en": (
        "Dr. Smith paid $3.50 for a coffee at 7:45 a.m. on Jan. 3rd. Then he left the shop! "
        'Why did he go? "I was late," he said. The U.S. team won 3.5 to 2, e.g. a close game. '
    ),
    "de": "Hr. Müller kaufte 3,5 kg Äpfel, d.h. mehr als gestern. Warum? Er hat Gäste! ",
    "zh": "今天天气很好，我们去公园散步吧。价格是3.5元！你觉得怎么样？",
    "ja": "今日はとても良い天気ですね。公園に散歩に行きましょう！どう思いますか？",
}


def repeat_to(sample: str, size: int) -> str:
    return (sample * (size // len(sample) + 1))[:size]


def feed_cost_us(text: str, language: str, fragment: int, runs: int) -> tuple[float, int]:
    """Median over runs of the mean microseconds per feed call; and the segment count."""
    pieces = [text[i : i + fragment] for i in range(0, len(text), fragment)]
    means = []
    segments = 0
    for _ in range(runs):
        splitter = IncrementalSplitter(language)
        begin = time.perf_counter()
        out = [segment for piece in pieces for segment in splitter.feed(piece)]
        means.append((time.perf_counter() - begin) / len(pieces) * 1e6)
        segments = len(out) + len(splitter.flush())
    return statistics.median(means), segments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=2000, help="streamed text length")
    parser.add_argument("--fragment", type=int, default=5, help="characters per feed call")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--batch-chars", type=int, default=200_000, help="split_sentences text")
    args = parser.parse_args()

    print(f"IncrementalSplitter.feed, {args.chars} chars in {args.fragment}-char fragments:")
    for language, sample in SAMPLES.items():
        text = repeat_to(sample, args.chars)
        mean_us, segments = feed_cost_us(text, language, args.fragment, args.runs)
        print(f"  {language}: {mean_us:6.2f} us/feed  ({segments} segments)")

    begin = time.perf_counter()
    split_sentences(repeat_to(SAMPLES["en"], 1000), "en")
    print(f"split_sentences: first call (spaCy import + blank 'en' pipeline) "
          f"{time.perf_counter() - begin:.2f} s")  # fmt: skip
    text = repeat_to(SAMPLES["en"], args.batch_chars)
    times = []
    for _ in range(3):
        begin = time.perf_counter()
        segments = split_sentences(text, "en")
        times.append(time.perf_counter() - begin)
    best = min(times)
    print(f"split_sentences en: {len(text) / best:,.0f} chars/s "
          f"({len(text)} chars -> {len(segments)} segments in {best * 1e3:.1f} ms, best of 3)")  # fmt: skip
    for language in ("en", "zh"):
        text = repeat_to(SAMPLES[language], args.batch_chars // 4)
        begin = time.perf_counter()
        IncrementalSplitter(language).feed(text)
        rate = len(text) / (time.perf_counter() - begin)
        print(f"IncrementalSplitter {language}, whole text in one feed: {rate:,.0f} chars/s")


if __name__ == "__main__":
    main()
