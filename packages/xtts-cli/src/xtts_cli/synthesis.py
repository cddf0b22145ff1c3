"""Timed synthesis runs: one-shot (all codes, then one vocoder pass) or streamed (chunks
written as they arrive).

Both report the same :class:`RunStats`, so a person can compare the two, ``batch`` can log them
per item and ``bench`` can take their medians.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xtts_cli.console import progress

if TYPE_CHECKING:
    import numpy as np

    from xtts_cli.output import Writer
    from xtts_core.chunking import StreamOptions
    from xtts_core.engine import XttsEngine
    from xtts_core.generate import SamplingParams
    from xtts_core.voice import Voice


@dataclass(frozen=True)
class Utterance:
    """What to say and how: the same for a one-shot and a streamed run."""

    text: str
    language: str
    voice: Voice
    params: SamplingParams
    speed: float = 1.0
    split_text: bool = True


@dataclass
class RunStats:
    """Timing of one synthesis; ``ttfa_s`` and chunk gaps exist only for streamed runs."""

    audio_s: float
    elapsed_s: float
    codes: int
    ttfa_s: float | None = None
    chunk_gaps_s: list[float] = field(default_factory=list)

    @property
    def rtf(self) -> float:
        """Real-time factor: seconds of compute per second of audio (< 1 is faster than real time)."""
        return self.elapsed_s / self.audio_s if self.audio_s > 0 else float("inf")

    def summary(self) -> str:
        parts = [f"{self.audio_s:.2f} s of audio ({self.codes} codes) in {self.elapsed_s:.2f} s"]
        if self.ttfa_s is not None:
            parts.append(f"time to first audio {self.ttfa_s:.3f} s")
        parts.append(f"real-time factor {self.rtf:.2f}")
        if self.chunk_gaps_s:
            gaps = self.chunk_gaps_s
            parts.append(
                f"chunk latency mean {sum(gaps) / len(gaps):.3f} s, max {max(gaps):.3f} s "
                f"({len(gaps) + 1} chunks)"
            )
        return " · ".join(parts)


def run_stream(
    engine: XttsEngine, utterance: Utterance, options: StreamOptions, write: Writer
) -> RunStats:
    """Stream ``utterance`` into ``write`` chunk by chunk, timing the first chunk and the gaps."""
    u = utterance
    start = time.perf_counter()
    samples = codes = 0
    times: list[float] = []
    for chunk in engine.stream(
        u.text, u.language, u.voice, u.params, u.speed, options, u.split_text
    ):
        if chunk.samples.size:
            write(chunk.samples)
            samples += chunk.samples.size
            times.append(time.perf_counter() - start)
        codes = chunk.codes_so_far
    elapsed = time.perf_counter() - start
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return RunStats(
        samples / engine.sample_rate, elapsed, codes, times[0] if times else elapsed, gaps
    )


def run_oneshot(engine: XttsEngine, utterance: Utterance) -> tuple[np.ndarray, RunStats]:
    """Synthesise ``utterance`` at once, with a progress bar over its segments and codes."""
    u = utterance
    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("synthesising", total=None, detail="")

        def on_code(segment: int, segments: int, codes: int) -> None:
            detail = f"segment {segment + 1}/{segments}, {codes} codes"
            bar.update(task, total=segments, completed=segment, detail=detail)

        result = engine.synthesize(
            u.text, u.language, u.voice, u.params, u.speed, u.split_text, on_code
        )
    elapsed = time.perf_counter() - start
    return result.wav, RunStats(result.wav.size / engine.sample_rate, elapsed, len(result.codes))
