"""``xtts bench``: time to first audio and real-time factor on this machine, for sizing.

A fixed sentence is streamed (exact mode, default chunking) with a fixed seed after one warm-up
run, so numbers from different machines, devices and precisions compare; the audio is discarded.
"""

from __future__ import annotations

import json
import statistics
from typing import Annotated

import numpy as np
import typer

from xtts_cli.console import info
from xtts_cli.engine_and_voice import EngineOptions, SpeechSetup, VoiceOptions
from xtts_cli.option_groups import grouped_options
from xtts_cli.options import JsonOption, LanguageOption, MaxCodesOption
from xtts_cli.sampling import SamplingOptions, StreamingOptions
from xtts_cli.synthesis import RunStats, Utterance, run_stream

SENTENCE = (
    "The quick brown fox jumps over the lazy dog, and then it runs all the way back home again."
)


@grouped_options
def bench(
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed runs after one warm-up.")] = 3,
    text: Annotated[str, typer.Option("--text", help="Sentence to speak.")] = SENTENCE,
    language: LanguageOption = "en",
    max_codes: MaxCodesOption = None,
    *,
    voice_options: VoiceOptions,
    model_options: EngineOptions,
    as_json: JsonOption = False,
) -> None:
    """Measure time to first audio and real-time factor of streamed synthesis."""
    engine, voice = SpeechSetup.check(model_options, voice_options).load()
    params = SamplingOptions(seed=0, max_codes=max_codes).params(engine.config.sampling)
    options = StreamingOptions().stream_options(denoise=False)

    def discard(samples: np.ndarray) -> None:
        del samples

    utterance = Utterance(text, language, voice, params)

    def once() -> RunStats:
        return run_stream(engine, utterance, options, discard)

    once()  # warm-up: first-call allocations and kernel selection are not what a server sees
    results = []
    for i in range(runs):
        results.append(once())
        info(f"run {i + 1}/{runs}: {results[-1].summary()}")
    ttfa = statistics.median(r.ttfa_s or r.elapsed_s for r in results)
    rtf = statistics.median(r.rtf for r in results)
    report = {
        "device": str(engine.model.device),
        "dtype": model_options.dtype.value,
        "runs": [
            {"ttfa_s": r.ttfa_s, "rtf": r.rtf, "audio_s": r.audio_s, "elapsed_s": r.elapsed_s}
            for r in results
        ],
        "median_ttfa_s": ttfa,
        "median_rtf": rtf,
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(
            f"{engine.model.device} {model_options.dtype.value}: time to first audio {ttfa:.3f} s, "
            f"real-time factor {rtf:.2f} (median of {runs})"
        )
