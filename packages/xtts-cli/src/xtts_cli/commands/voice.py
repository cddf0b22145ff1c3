"""``xtts voice``: clone a voice once and save it, list named speakers, describe a voice file.

A saved voice is a one-entry ``speakers_xtts.pth`` (xtts-core's :class:`~xtts_core.voice.Voice`
layout), so ``xtts synth --voice`` skips cloning, and ``voice info`` reads both kinds of file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from xtts_cli.console import info
from xtts_cli.engine_and_voice import EngineOptions, check_references
from xtts_cli.errors import UsageError
from xtts_cli.model_files import SPEAKERS_FILE
from xtts_cli.option_groups import grouped_options
from xtts_cli.options import JsonOption, ModelDirOption, SpeakersOption
from xtts_cli.output import check_writable_dir, partial_file

app = typer.Typer(
    help="Voices: clone and save, list named speakers, inspect files.", no_args_is_help=True
)


@app.command("clone", no_args_is_help=True)
@grouped_options
def clone(
    references: Annotated[list[Path], typer.Argument(help="Reference audio clips of one speaker.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Voice file to write (.pt).")],
    name: Annotated[str, typer.Option("--name", help="Name stored in the file.")] = "voice",
    *,
    model_options: EngineOptions,
) -> None:
    """Clone a voice from reference audio and save it for `xtts synth --voice`."""
    check_writable_dir(output.parent)
    check_references(references)
    engine = model_options.load(model_options.files())
    voice = engine.clone_voice(references, name=name)
    with partial_file(output) as partial:
        voice.save(partial)
    info(f"saved voice {name!r} cloned from {len(references)} clip(s) to {output}")


@app.command("list")
def list_speakers(
    model_dir: ModelDirOption = None,
    speakers: SpeakersOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the named speakers of a checkpoint (its speakers_xtts.pth)."""
    names = sorted(_read(_speakers_file(model_dir, speakers)))
    typer.echo(json.dumps(names) if as_json else "\n".join(names))


@app.command("info", no_args_is_help=True)
def describe(
    file: Annotated[Path, typer.Argument(help="A saved voice or a speakers_xtts.pth.")],
    as_json: JsonOption = False,
) -> None:
    """Describe the voices in a file: names and tensor shapes."""
    from xtts_core.voice import Voice

    entries: list[dict[str, Any]] = []
    for name, entry in _read(file).items():
        voice = Voice.from_entry(name, entry)
        entries.append(
            {
                "name": name,
                "gpt_cond_latent": list(voice.gpt_cond_latent.shape),
                "speaker_embedding": list(voice.speaker_embedding.shape),
                "embedding_norm": round(float(voice.speaker_embedding.norm()), 4),
            }
        )
    if as_json:
        typer.echo(json.dumps({"file": str(file), "voices": entries}, indent=2))
        return
    typer.echo(f"{file}: {len(entries)} voice(s)")
    for e in entries:
        typer.echo(
            f"  {e['name']}: latents {tuple(e['gpt_cond_latent'])}, "
            f"speaker embedding {tuple(e['speaker_embedding'])} (norm {e['embedding_norm']})"
        )


def _speakers_file(model_dir: Path | None, speakers: Path | None) -> Path:
    if speakers is not None:
        return speakers
    if model_dir is not None:
        return model_dir / SPEAKERS_FILE
    raise UsageError("no speakers file: pass --model-dir DIR or --speakers FILE")


def _read(path: Path) -> dict[str, Any]:
    from xtts_core.checkpoint import read_speakers
    from xtts_core.errors import CheckpointError

    if not path.is_file():
        raise CheckpointError(f"speakers file not found: {path}")
    return read_speakers(path)
