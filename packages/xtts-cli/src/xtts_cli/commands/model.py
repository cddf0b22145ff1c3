"""``xtts model``: write random test checkpoints, check checkpoint folders, download XTTS-v2."""

from __future__ import annotations

import json
import shutil
import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from xtts_cli.checkpoint_check import check_files
from xtts_cli.commands.download import download
from xtts_cli.console import info
from xtts_cli.errors import UsageError
from xtts_cli.model_files import CHECKPOINT_FILES, ModelSource
from xtts_cli.options import (
    CheckpointOption,
    ConfigOption,
    JsonOption,
    SpeakersOption,
    TokenizerOption,
)
from xtts_cli.output import check_writable_dir

app = typer.Typer(help="Model tools: test checkpoints, checks, downloads.", no_args_is_help=True)
app.command("download")(download)


class Size(str, Enum):
    """Sizes of the random checkpoint writer (the vocoder is always release size)."""

    tiny = "tiny"
    mid = "mid"
    release = "release"


@app.command("make-test-checkpoint")
def make_test_checkpoint(
    directory: Annotated[Path, typer.Argument(help="Folder to write (created if missing).")],
    size: Annotated[
        Size, typer.Option("--size", help="tiny: tests; release: benchmarks (~1.9 GB).")
    ] = Size.tiny,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random weight.")] = 0,
    legacy: Annotated[
        bool,
        typer.Option(
            "--legacy",
            help="The released file's legacy form: pickled config, weight_g/weight_v names.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a checkpoint already there.")
    ] = False,
) -> None:
    """Write a checkpoint with RANDOM weights: it speaks noise, for demos, tests and benchmarks."""
    existing = [name for name in CHECKPOINT_FILES if (directory / name).exists()]
    if existing and not force:
        raise UsageError(
            f"{directory} already holds {', '.join(existing)}; pass --force to overwrite"
        )
    parent = directory.parent
    check_writable_dir(parent)
    from xtts_core.random_checkpoint import write_random_checkpoint

    partial = Path(tempfile.mkdtemp(dir=parent, prefix=f".{directory.name}.partial-"))
    try:
        write_random_checkpoint(
            partial,
            size.value,
            seed=seed,
            weight_norm="legacy" if legacy else "parametrizations",
            pickled_config=legacy,
        )
        directory.mkdir(exist_ok=True)
        for name in CHECKPOINT_FILES:
            (partial / name).replace(directory / name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    info(
        f"wrote a {size.value} checkpoint with random weights to {directory}: it makes noise, "
        "not speech (for demos, tests and benchmarks)"
    )


@app.command("check")
def check(
    directory: Annotated[Path | None, typer.Argument(help="Checkpoint folder.")] = None,
    config: ConfigOption = None,
    checkpoint: CheckpointOption = None,
    tokenizer: TokenizerOption = None,
    speakers: SpeakersOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a checkpoint: files present, config parses, tensors fit the config, all finite."""
    files = ModelSource(directory, config, checkpoint, tokenizer, speakers).files()
    summary = check_files(files)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    gpt = summary["gpt"]
    typer.echo(f"{summary['model']}: OK")
    typer.echo(
        f"  GPT: {gpt['layers']} layers, width {gpt['width']}, {gpt['heads']} heads, "
        f"{gpt['text_tokens']} text tokens, {gpt['audio_tokens']} audio codes"
    )
    typer.echo(f"  parameters: {summary['parameters']:,}; output {summary['sample_rate']} Hz")
    typer.echo(f"  languages ({len(summary['languages'])}): {' '.join(summary['languages'])}")
    typer.echo(f"  named speakers: {len(summary['speakers'])}")
