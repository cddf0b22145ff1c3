"""The options that several commands or option groups take, each declared once.

Each alias is the ``Annotated`` type of a command parameter or of an option-group field (see
:mod:`xtts_cli.option_groups`), so a flag's name, help text, environment variable and help
panel read the same everywhere. An option that belongs to one group only (``--device``,
``--voice``, ``--top-k``, ...) is declared in that group's dataclass instead. Nothing here
imports torch: ``--help`` stays fast.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

MODEL_PANEL = "Model"
VOICE_PANEL = "Voice"
SAMPLING_PANEL = "Sampling (defaults from config.json)"
STREAM_PANEL = "Streaming"


class Dtype(str, Enum):
    """GPT precision; the vocoder always runs in fp32."""

    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    int8 = "int8"


def in_panel(panel: str, *names: str, help: str, **extra: Any) -> Any:
    """A Typer option shown under the help panel ``panel``."""
    return typer.Option(*names, rich_help_panel=panel, help=help, **extra)


ModelDirOption = Annotated[
    Path | None,
    in_panel(
        MODEL_PANEL,
        "--model-dir",
        "-m",
        envvar="XTTS_MODEL_DIR",
        help="Checkpoint folder: config.json, model.pth, vocab.json, speakers_xtts.pth.",
    ),
]
ConfigOption = Annotated[
    Path | None, in_panel(MODEL_PANEL, "--config", help="config.json (instead of --model-dir).")
]
CheckpointOption = Annotated[
    Path | None, in_panel(MODEL_PANEL, "--checkpoint", help="model.pth (instead of --model-dir).")
]
TokenizerOption = Annotated[
    Path | None, in_panel(MODEL_PANEL, "--tokenizer", help="vocab.json (instead of --model-dir).")
]
SpeakersOption = Annotated[
    Path | None, in_panel(MODEL_PANEL, "--speakers", help="speakers_xtts.pth with named voices.")
]
SpeedOption = Annotated[
    float, in_panel(SAMPLING_PANEL, "--speed", help="Speaking rate (1.0 normal).")
]
MaxCodesOption = Annotated[
    int | None,
    in_panel(
        SAMPLING_PANEL,
        "--max-codes",
        min=1,
        help="Cap on audio codes per segment (one code is 46 ms); default: the model's.",
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
SplitOption = Annotated[
    bool, typer.Option("--split-text/--no-split-text", help="Speak long text sentence by sentence.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
