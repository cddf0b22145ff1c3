"""How every command gets its engine and its voice: options checked first, the model loaded once.

:class:`EngineOptions` (the model files, device, precision) and :class:`VoiceOptions` (clone
from clips, a named speaker, or a saved voice) are option groups (see
:mod:`xtts_cli.option_groups`): a command takes them as parameters and gets every flag. The
invariant: everything about the model files and the voice that can fail is checked by
:meth:`SpeechSetup.check` before :meth:`SpeechSetup.load` starts the slow model load, so a typo
fails in well under a second.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from xtts_cli.console import info
from xtts_cli.errors import UsageError
from xtts_cli.model_files import ModelFiles, ModelSource
from xtts_cli.options import (
    MODEL_PANEL,
    VOICE_PANEL,
    CheckpointOption,
    ConfigOption,
    Dtype,
    ModelDirOption,
    SpeakersOption,
    TokenizerOption,
    in_panel,
)

if TYPE_CHECKING:
    from xtts_core.engine import XttsEngine
    from xtts_core.voice import Voice


@dataclass(frozen=True)
class EngineOptions:
    """The model flags of one command line: which checkpoint, on which device, in which dtype."""

    model_dir: ModelDirOption = None
    config: ConfigOption = None
    checkpoint: CheckpointOption = None
    tokenizer: TokenizerOption = None
    speakers: SpeakersOption = None
    device: Annotated[
        str,
        in_panel(
            MODEL_PANEL,
            "--device",
            envvar="XTTS_DEVICE",
            help="auto (cuda if present, else cpu), cpu, cuda or cuda:N.",
        ),
    ] = "auto"
    dtype: Annotated[
        Dtype,
        in_panel(
            MODEL_PANEL,
            "--dtype",
            envvar="XTTS_DTYPE",
            help="GPT precision: fp32 (exact), bf16, fp16 (cuda) or int8 (cpu).",
        ),
    ] = Dtype.fp32

    def files(self) -> ModelFiles:
        """The checkpoint files, every one checked to exist."""
        return ModelSource(
            self.model_dir, self.config, self.checkpoint, self.tokenizer, self.speakers
        ).files()

    def load(self, files: ModelFiles) -> XttsEngine:
        """Load the engine, saying what is loaded and how long it took."""
        from xtts_core.engine import XttsEngine

        start = time.perf_counter()
        engine = XttsEngine.from_pretrained(
            files.checkpoint_files(),
            None if self.device == "auto" else self.device,
            self.dtype.value,
        )
        info(
            f"loaded {files.model} on {engine.model.device} ({self.dtype.value}) "
            f"in {time.perf_counter() - start:.1f} s"
        )
        return engine


@dataclass(frozen=True)
class VoiceOptions:
    """The voice flags of one command line; at most one of them may be given."""

    reference: Annotated[
        list[Path] | None,
        in_panel(
            VOICE_PANEL,
            "--reference",
            "-r",
            help="Reference audio to clone (repeatable; any format libsndfile reads).",
        ),
    ] = None
    speaker: Annotated[
        str | None,
        in_panel(VOICE_PANEL, "--speaker", "-s", help="A named speaker of speakers_xtts.pth."),
    ] = None
    voice: Annotated[
        Path | None, in_panel(VOICE_PANEL, "--voice", help="A voice saved by `xtts voice clone`.")
    ] = None

    def check(self, files: ModelFiles) -> None:
        """Everything about the chosen voice that can fail without the model: one way of
        choosing it, reference clips that exist and are audio, a known speaker, a readable file."""
        flags = (
            ("--reference", self.reference),
            ("--speaker", self.speaker),
            ("--voice", self.voice),
        )
        given = [flag for flag, value in flags if value]
        if len(given) > 1:
            raise UsageError(f"choose one voice: {' and '.join(given)} were both given")
        if not given and files.speakers is None:
            raise UsageError(
                "no voice given: pass --reference FILE, --speaker NAME or --voice FILE"
            )
        if self.reference:
            check_references(self.reference)
        if self.voice is not None:
            from xtts_core.voice import Voice

            Voice.load(self.voice)
        if self.speaker is not None:
            check_speaker(files, self.speaker)

    def select(self, engine: XttsEngine) -> Voice:
        """The voice to speak with (inputs checked by :meth:`check`); without a choice, the
        checkpoint's first named speaker."""
        from xtts_core.voice import Voice

        if self.reference:
            start = time.perf_counter()
            cloned = engine.clone_voice(self.reference)
            elapsed = time.perf_counter() - start
            info(f"cloned a voice from {len(self.reference)} clip(s) in {elapsed:.1f} s")
            return cloned
        if self.voice is not None:
            return Voice.load(self.voice)
        speaker = self.speaker
        if speaker is None:
            if not engine.speakers:  # a speakers file without entries
                raise UsageError(
                    "no voice given and the speakers file is empty: pass --reference FILE"
                )
            speaker = engine.speakers[0]
            info(f"no voice given: using the speaker {speaker!r}")
        return engine.speaker(speaker)


@dataclass(frozen=True)
class SpeechSetup:
    """A model and a voice whose every input is checked; nothing is loaded until :meth:`load`."""

    files: ModelFiles
    engine: EngineOptions
    voice: VoiceOptions

    @classmethod
    def check(cls, engine: EngineOptions, voice: VoiceOptions) -> SpeechSetup:
        """Resolve and check the model files and the voice flags (fast: no model load)."""
        files = engine.files()
        voice.check(files)
        return cls(files, engine, voice)

    def load(self) -> tuple[XttsEngine, Voice]:
        """The loaded engine and the voice to speak with."""
        engine = self.engine.load(self.files)
        return engine, self.voice.select(engine)


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
