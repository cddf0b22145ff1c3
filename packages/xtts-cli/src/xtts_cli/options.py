"""Options shared by several commands, and turning the model options into checkpoint files.

A model is either a directory in the released layout (``--model-dir``, or ``XTTS_MODEL_DIR``, or
``model_dir`` in the CLI config file) or the original CLI's explicit files (``--config``,
``--checkpoint``, ``--tokenizer``, ``--speakers``). Explicit files override single files of a
directory, so ``--model-dir D --speakers mine.pth`` uses D with other speakers. Every missing
file is named before the (slow) model load starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from xtts_cli.console import info
from xtts_cli.errors import CliError, UsageError

if TYPE_CHECKING:
    from xtts_core.checkpoint import CheckpointFiles
    from xtts_core.engine import XttsEngine

SPEAKERS_FILE = "speakers_xtts.pth"

MODEL_PANEL = "Model"


class Dtype(str, Enum):
    """GPT precision; the vocoder always runs in fp32."""

    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    int8 = "int8"


ModelDirOption = Annotated[
    Path | None,
    typer.Option(
        "--model-dir",
        "-m",
        envvar="XTTS_MODEL_DIR",
        rich_help_panel=MODEL_PANEL,
        help="Checkpoint folder: config.json, model.pth, vocab.json, speakers_xtts.pth.",
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", rich_help_panel=MODEL_PANEL, help="config.json (instead of --model-dir)."
    ),
]
CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint", rich_help_panel=MODEL_PANEL, help="model.pth (instead of --model-dir)."
    ),
]
TokenizerOption = Annotated[
    Path | None,
    typer.Option(
        "--tokenizer", rich_help_panel=MODEL_PANEL, help="vocab.json (instead of --model-dir)."
    ),
]
SpeakersOption = Annotated[
    Path | None,
    typer.Option(
        "--speakers", rich_help_panel=MODEL_PANEL, help="speakers_xtts.pth with named voices."
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        envvar="XTTS_DEVICE",
        rich_help_panel=MODEL_PANEL,
        help="auto (cuda if present, else cpu), cpu, cuda or cuda:N.",
    ),
]
DtypeOption = Annotated[
    Dtype,
    typer.Option(
        "--dtype",
        envvar="XTTS_DTYPE",
        rich_help_panel=MODEL_PANEL,
        help="GPT precision: fp32 (exact), bf16, fp16 (cuda) or int8 (cpu).",
    ),
]
LanguageOption = Annotated[
    str,
    typer.Option(
        "--language",
        "-l",
        envvar="XTTS_LANGUAGE",
        help="Language code (en, de, zh-cn, ...); region suffixes such as en-US are accepted.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


@dataclass(frozen=True)
class ModelFiles:
    """The files of one checkpoint, known to exist (torch-free, unlike xtts-core's
    ``CheckpointFiles``, so that bad input fails before torch is even imported)."""

    config: Path
    model: Path
    vocab: Path
    speakers: Path | None = None

    def checkpoint_files(self) -> CheckpointFiles:
        from xtts_core.checkpoint import CheckpointFiles

        return CheckpointFiles(self.config, self.model, self.vocab, self.speakers)


@dataclass(frozen=True)
class ModelSource:
    """The model options of one command line."""

    model_dir: Path | None = None
    config: Path | None = None
    checkpoint: Path | None = None
    tokenizer: Path | None = None
    speakers: Path | None = None

    def files(self) -> ModelFiles:
        """The checkpoint files, every one checked to exist (the error names all missing)."""
        if self.model_dir is not None:
            if not self.model_dir.is_dir():
                raise CliError(f"model directory not found: {self.model_dir}")
            d = self.model_dir
            default_speakers = d / SPEAKERS_FILE if (d / SPEAKERS_FILE).is_file() else None
            files = ModelFiles(
                self.config or d / "config.json",
                self.checkpoint or d / "model.pth",
                self.tokenizer or d / "vocab.json",
                self.speakers or default_speakers,
            )
        elif self.config and self.checkpoint and self.tokenizer:
            files = ModelFiles(self.config, self.checkpoint, self.tokenizer, self.speakers)
        else:
            raise UsageError(
                "no model given: pass --model-dir DIR (or set XTTS_MODEL_DIR), "
                "or all of --config, --checkpoint and --tokenizer"
            )
        paths = [files.config, files.model, files.vocab, files.speakers]
        missing = [str(path) for path in paths if path is not None and not path.is_file()]
        if missing:
            raise CliError(f"missing model file{'s' * (len(missing) > 1)}: {', '.join(missing)}")
        return files

    def vocab(self) -> Path:
        """Only the vocab.json (the text commands need nothing else)."""
        if self.tokenizer is not None:
            path = self.tokenizer
        elif self.model_dir is not None:
            path = self.model_dir / "vocab.json"
        else:
            raise UsageError("no vocabulary given: pass --model-dir DIR or --tokenizer vocab.json")
        if not path.is_file():
            raise CliError(f"missing model file: {path}")
        return path


def load_engine(files: ModelFiles, device: str, dtype: Dtype) -> XttsEngine:
    """Load the engine, saying what is loaded and how long it took."""
    from xtts_core.engine import XttsEngine

    start = time.perf_counter()
    engine = XttsEngine.from_pretrained(
        files.checkpoint_files(), None if device == "auto" else device, dtype.value
    )
    info(
        f"loaded {files.model} on {engine.model.device} ({dtype.value}) "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return engine
