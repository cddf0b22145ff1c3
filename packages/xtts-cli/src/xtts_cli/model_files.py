"""Turning the model options into checkpoint files, every one checked before torch is imported.

A model is either a directory in the released layout (``--model-dir``, or ``XTTS_MODEL_DIR``, or
``model_dir`` in the CLI config file) or its files named one by one (``--config``,
``--checkpoint``, ``--tokenizer``, ``--speakers``). Explicit files override single files of a
directory, so ``--model-dir D --speakers mine.pth`` uses D with other speakers. Every missing
file is named before the (slow) model load starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xtts_cli.errors import CliError, UsageError

if TYPE_CHECKING:
    from xtts_core.checkpoint import CheckpointFiles

SPEAKERS_FILE = "speakers_xtts.pth"
#: The files of a checkpoint folder in the released layout.
CHECKPOINT_FILES = ("config.json", "model.pth", "vocab.json", SPEAKERS_FILE)


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
