"""What ``synth``, ``batch`` and ``bench`` share: option types, voice choice, sampling, timing.

A run is either one-shot (all codes, then one vocoder pass; a progress bar over segments and
codes) or streamed (chunks written as they arrive). Both report the same :class:`RunStats`, so a
person can compare the two and ``batch`` can log them per item.
"""

from __future__ import annotations

import difflib
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from xtts_cli.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

    from xtts_cli.options import ModelFiles
    from xtts_cli.output import Writer
    from xtts_core.chunking import StreamOptions
    from xtts_core.config import SamplingDefaults
    from xtts_core.engine import XttsEngine
    from xtts_core.generate import SamplingParams
    from xtts_core.voice import Voice

VOICE_PANEL = "Voice"
SAMPLING_PANEL = "Sampling (defaults from config.json)"
STREAM_PANEL = "Streaming"

ReferenceOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--reference",
        "-r",
        rich_help_panel=VOICE_PANEL,
        help="Reference audio to clone (repeatable; any format libsndfile reads).",
    ),
]
SpeakerOption = Annotated[
    str | None,
    typer.Option(
        "--speaker", "-s", rich_help_panel=VOICE_PANEL, help="A named speaker of speakers_xtts.pth."
    ),
]
VoiceOption = Annotated[
    Path | None,
    typer.Option(
        "--voice", rich_help_panel=VOICE_PANEL, help="A voice saved by `xtts voice clone`."
    ),
]
TemperatureOption = Annotated[
    float | None,
    typer.Option("--temperature", rich_help_panel=SAMPLING_PANEL, help="Softmax temperature."),
]
TopKOption = Annotated[
    int | None,
    typer.Option(
        "--top-k", rich_help_panel=SAMPLING_PANEL, help="Keep the k likeliest codes (0: off)."
    ),
]
TopPOption = Annotated[
    float | None,
    typer.Option("--top-p", rich_help_panel=SAMPLING_PANEL, help="Nucleus sampling mass."),
]
RepetitionOption = Annotated[
    float | None,
    typer.Option(
        "--repetition-penalty", rich_help_panel=SAMPLING_PANEL, help="Penalty for repeated codes."
    ),
]
LengthOption = Annotated[
    float | None,
    typer.Option(
        "--length-penalty",
        rich_help_panel=SAMPLING_PANEL,
        help="Accepted for parity with the reference (it only affects beam search).",
    ),
]
SpeedOption = Annotated[
    float,
    typer.Option("--speed", rich_help_panel=SAMPLING_PANEL, help="Speaking rate (1.0 normal)."),
]
SeedOption = Annotated[
    int | None,
    typer.Option(
        "--seed", rich_help_panel=SAMPLING_PANEL, help="Seed: the same seed gives the same audio."
    ),
]
SampleOption = Annotated[
    bool,
    typer.Option(
        "--sample/--no-sample",
        rich_help_panel=SAMPLING_PANEL,
        help="Sample codes, or take the likeliest.",
    ),
]
MaxCodesOption = Annotated[
    int | None,
    typer.Option(
        "--max-codes",
        min=1,
        rich_help_panel=SAMPLING_PANEL,
        help="Cap on audio codes per segment (one code is 46 ms); default: the model's.",
    ),
]
SplitOption = Annotated[
    bool,
    typer.Option("--split-text/--no-split-text", help="Speak long text sentence by sentence."),
]
ChunkOption = Annotated[
    int,
    typer.Option(
        "--stream-chunk-size",
        min=1,
        rich_help_panel=STREAM_PANEL,
        help="Codes per chunk once streaming runs.",
    ),
]
FirstChunkOption = Annotated[
    int,
    typer.Option(
        "--stream-first-chunk-size",
        min=1,
        rich_help_panel=STREAM_PANEL,
        help="Codes before the first chunk.",
    ),
]
OverlapOption = Annotated[
    int,
    typer.Option(
        "--stream-overlap",
        min=0,
        rich_help_panel=STREAM_PANEL,
        help="Samples cross-faded between chunks; > 0 selects the low-latency mode with "
        "--stream-lookahead (0: exact, identical to one-shot).",
    ),
]
LookaheadOption = Annotated[
    int | None,
    typer.Option(
        "--stream-lookahead",
        min=0,
        rich_help_panel=STREAM_PANEL,
        help="Vocoder frames held back per chunk in low-latency mode (default 4 with an overlap).",
    ),
]

LOW_LATENCY_LOOKAHEAD = 4
T = TypeVar("T")


@dataclass(frozen=True)
class Sampling:
    """The sampling flags as given (``None``: take config.json's value)."""

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    length_penalty: float | None = None
    do_sample: bool = True
    seed: int | None = None
    max_codes: int | None = None

    def params(self, defaults: SamplingDefaults) -> SamplingParams:
        """Sampling parameters with the checkpoint's defaults filled in, as the reference does."""
        from xtts_core.generate import SamplingParams

        def pick(value: T | None, default: T) -> T:
            return default if value is None else value

        return SamplingParams(
            temperature=pick(self.temperature, defaults.temperature),
            top_k=pick(self.top_k, defaults.top_k),
            top_p=pick(self.top_p, defaults.top_p),
            repetition_penalty=pick(self.repetition_penalty, defaults.repetition_penalty),
            length_penalty=pick(self.length_penalty, defaults.length_penalty),
            do_sample=self.do_sample,
            seed=self.seed,
            max_new_codes=self.max_codes,
        )


def stream_options(
    first_chunk: int, chunk: int, overlap: int, lookahead: int | None, denoise: bool
) -> StreamOptions:
    """StreamOptions from the flags; an overlap implies the low-latency (lookahead) mode."""
    from xtts_core.chunking import StreamOptions

    if lookahead is None and overlap > 0:
        lookahead = LOW_LATENCY_LOOKAHEAD
    return StreamOptions(first_chunk, chunk, lookahead, overlap, denoise)


def check_voice_inputs(
    files: ModelFiles, references: list[Path] | None, speaker: str | None, voice: Path | None
) -> None:
    """Everything about the chosen voice that can fail, checked before the model loads: one way
    of choosing it, reference clips that exist and are audio, a known speaker, a readable file."""
    given = [
        f for f, v in (("--reference", references), ("--speaker", speaker), ("--voice", voice)) if v
    ]
    if len(given) > 1:
        raise UsageError(f"choose one voice: {' and '.join(given)} were both given")
    if not given and files.speakers is None:
        raise UsageError("no voice given: pass --reference FILE, --speaker NAME or --voice FILE")
    if references:
        check_references(references)
    if voice is not None:
        from xtts_core.voice import Voice

        Voice.load(voice)
    if speaker is not None:
        check_speaker(files, speaker)


def check_references(references: list[Path]) -> None:
    """Each clip exists and libsndfile can read it (a cheap header read, no decoding)."""
    import soundfile as sf

    from xtts_core.errors import AudioError

    for path in references:
        if not path.is_file():
            raise AudioError(f"reference audio not found: {path}")
        try:
            sf.info(str(path))
        except (sf.SoundFileError, RuntimeError) as exc:
            detail = " ".join(str(exc).split())
            raise AudioError(f"cannot read reference audio {path}: {detail}") from None


def check_speaker(files: ModelFiles, speaker: str) -> None:
    """``speaker`` is in the checkpoint's speakers file; otherwise name the closest ones."""
    from xtts_core.checkpoint import read_speakers

    if files.speakers is None:
        raise UsageError(f"unknown speaker {speaker!r}: the model has no speakers_xtts.pth")
    names = sorted(read_speakers(files.speakers))
    if speaker not in names:
        close = difflib.get_close_matches(speaker, names, n=3, cutoff=0.4)
        hint = (
            f"closest: {', '.join(close)}"
            if close
            else f"{len(names)} speakers; see `xtts voice list`"
        )
        raise UsageError(f"unknown speaker {speaker!r} ({hint})")


def select_voice(
    engine: XttsEngine, references: list[Path] | None, speaker: str | None, voice: Path | None
) -> Voice:
    """The voice to speak with (inputs checked by :func:`check_voice_inputs`); without a
    choice, the checkpoint's first named speaker."""
    from xtts_cli.console import info
    from xtts_core.voice import Voice

    if references:
        start = time.perf_counter()
        cloned = engine.clone_voice(references)
        info(
            f"cloned a voice from {len(references)} clip(s) in {time.perf_counter() - start:.1f} s"
        )
        return cloned
    if voice is not None:
        return Voice.load(voice)
    if speaker is None:
        if not engine.speakers:  # a speakers file without entries
            raise UsageError("no voice given and the speakers file is empty: pass --reference FILE")
        speaker = engine.speakers[0]
        info(f"no voice given: using the speaker {speaker!r}")
    return engine.speaker(speaker)


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
    engine: XttsEngine,
    text: str,
    language: str,
    voice: Voice,
    params: SamplingParams,
    speed: float,
    options: StreamOptions,
    split_text: bool,
    write: Writer,
) -> RunStats:
    """Stream ``text`` into ``write`` chunk by chunk, timing the first chunk and the gaps."""
    start = time.perf_counter()
    samples = codes = 0
    times: list[float] = []
    for chunk in engine.stream(text, language, voice, params, speed, options, split_text):
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


def run_oneshot(
    engine: XttsEngine,
    text: str,
    language: str,
    voice: Voice,
    params: SamplingParams,
    speed: float,
    split_text: bool,
) -> tuple[np.ndarray, RunStats]:
    """Synthesise ``text`` at once, with a progress bar over its segments and codes."""
    from xtts_cli.console import progress

    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("synthesising", total=None, detail="")

        def on_code(segment: int, segments: int, codes: int) -> None:
            detail = f"segment {segment + 1}/{segments}, {codes} codes"
            bar.update(task, total=segments, completed=segment, detail=detail)

        result = engine.synthesize(text, language, voice, params, speed, split_text, on_code)
    elapsed = time.perf_counter() - start
    return result.wav, RunStats(result.wav.size / engine.sample_rate, elapsed, len(result.codes))
