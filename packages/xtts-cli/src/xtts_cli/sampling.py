"""The sampling and chunking flags as option groups, and what xtts-core makes of them.

:class:`SamplingOptions` leaves every flag not given as ``None`` so that the checkpoint's
config.json supplies it, as the reference does; :class:`StreamingOptions` holds the chunk sizes
of a streamed run, whose defaults are also what ``batch`` and ``bench`` stream with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from xtts_cli.options import (
    SAMPLING_PANEL,
    STREAM_PANEL,
    MaxCodesOption,
    in_panel,
)

if TYPE_CHECKING:
    from xtts_core.chunking import StreamOptions
    from xtts_core.config import SamplingDefaults
    from xtts_core.generate import SamplingParams

#: Vocoder frames held back per chunk when an overlap asks for the low-latency mode.
LOW_LATENCY_LOOKAHEAD = 4
T = TypeVar("T")


def _sampling(name: str, help: str) -> Any:
    return in_panel(SAMPLING_PANEL, name, help=help)


def _stream(name: str, low: int, help: str) -> Any:
    return in_panel(STREAM_PANEL, name, min=low, help=help)


@dataclass(frozen=True)
class SamplingOptions:
    """The sampling flags as given (``None``: take config.json's value)."""

    temperature: Annotated[float | None, _sampling("--temperature", "Softmax temperature.")] = None
    top_k: Annotated[int | None, _sampling("--top-k", "Keep the k likeliest codes (0: off).")] = (
        None
    )
    top_p: Annotated[float | None, _sampling("--top-p", "Nucleus sampling mass.")] = None
    repetition_penalty: Annotated[
        float | None, _sampling("--repetition-penalty", "Penalty for repeated codes.")
    ] = None
    length_penalty: Annotated[
        float | None,
        _sampling(
            "--length-penalty",
            "Accepted for parity with the reference (it only affects beam search).",
        ),
    ] = None
    sample: Annotated[
        bool, _sampling("--sample/--no-sample", "Sample codes, or take the likeliest.")
    ] = True
    seed: Annotated[
        int | None, _sampling("--seed", "Seed: the same seed gives the same audio.")
    ] = None
    max_codes: MaxCodesOption = None

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
            do_sample=self.sample,
            seed=self.seed,
            max_new_codes=self.max_codes,
        )


@dataclass(frozen=True)
class StreamingOptions:
    """The chunking flags of a streamed run."""

    stream_first_chunk_size: Annotated[
        int, _stream("--stream-first-chunk-size", 1, "Codes before the first chunk.")
    ] = 6
    stream_chunk_size: Annotated[
        int, _stream("--stream-chunk-size", 1, "Codes per chunk once streaming runs.")
    ] = 20
    stream_overlap: Annotated[
        int,
        _stream(
            "--stream-overlap",
            0,
            "Samples cross-faded between chunks; > 0 selects the low-latency mode with "
            "--stream-lookahead (0: exact, identical to one-shot).",
        ),
    ] = 0
    stream_lookahead: Annotated[
        int | None,
        _stream(
            "--stream-lookahead",
            0,
            "Vocoder frames held back per chunk in low-latency mode (default 4 with an overlap).",
        ),
    ] = None

    def stream_options(self, denoise: bool) -> StreamOptions:
        """xtts-core's StreamOptions; an overlap implies the low-latency (lookahead) mode."""
        from xtts_core.chunking import StreamOptions

        lookahead = self.stream_lookahead
        if lookahead is None and self.stream_overlap > 0:
            lookahead = LOW_LATENCY_LOOKAHEAD
        return StreamOptions(
            self.stream_first_chunk_size,
            self.stream_chunk_size,
            lookahead,
            self.stream_overlap,
            denoise,
        )
