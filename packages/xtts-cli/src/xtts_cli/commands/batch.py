"""``xtts batch``: many texts to a folder of audio files plus a results CSV; resumable.

Input is a text file (one item per non-empty line, ids ``0001``, ``0002``, ...) or a
``.csv``/``.tsv``/``.psv`` table whose first two columns are ``id`` and ``text`` (LJSpeech's
``metadata.csv`` with ``|`` works as it is). Each item is streamed into ``ID.EXT`` through a
partial file, and ``results.csv`` is rewritten after every item, so an interrupted batch loses at
most the item in flight: run the same command again and finished items are skipped. A failing
item is recorded with its error and the batch goes on; the exit status is 1 if any item failed.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated

import typer

from xtts_cli.console import info, progress
from xtts_cli.engine_and_voice import EngineOptions, SpeechSetup, VoiceOptions
from xtts_cli.errors import CliError, UsageError
from xtts_cli.option_groups import grouped_options
from xtts_cli.options import LanguageOption, SpeedOption, SplitOption
from xtts_cli.output import FORMATS, OutputTarget, check_writable_dir, open_output, partial_file
from xtts_cli.sampling import SamplingOptions, StreamingOptions
from xtts_cli.synthesis import Utterance, run_stream
from xtts_cli.text_input import read_utf8

TABLE_SUFFIXES = {".csv", ".tsv", ".psv"}
SAFE_ID = re.compile(r"^[\w.-]+$")


@dataclass
class Result:
    """One row of results.csv."""

    id: str
    file: str
    status: str
    audio_s: str = ""
    elapsed_s: str = ""
    ttfa_s: str = ""
    rtf: str = ""
    codes: str = ""
    error: str = ""


def read_items(path: Path) -> list[tuple[str, str]]:
    """``(id, text)`` pairs of a text file or an id/text table; ids are checked as file names."""
    content = read_utf8(path, "batch input")
    if path.suffix.lower() in TABLE_SUFFIXES:
        first = content.split("\n", 1)[0]
        delimiter = "|" if "|" in first else "\t" if "\t" in first else ","
        # LJSpeech-style "|" and tab tables quote nothing: a '"' in the text is part of it.
        reader = (
            csv.reader(io.StringIO(content))
            if delimiter == ","
            else csv.reader(io.StringIO(content), delimiter=delimiter, quoting=csv.QUOTE_NONE)
        )
        rows = [r for r in reader if r]
        short = [n + 1 for n, r in enumerate(rows) if len(r) < 2]
        if short:
            raise UsageError(
                f"{path}: row {short[0]} has no text column (expected id{delimiter}text)"
            )
        items = [(r[0].strip(), r[1]) for r in rows]
    else:
        lines = [line for line in content.splitlines() if line.strip()]
        items = [(f"{n + 1:04d}", line) for n, line in enumerate(lines)]
    if not items:
        raise UsageError(f"{path} holds no items")
    seen: set[str] = set()
    for item_id, _ in items:
        if not SAFE_ID.match(item_id) or item_id in {".", ".."}:
            raise UsageError(
                f"{path}: id {item_id!r} cannot be a file name (letters, digits, _ . - only)"
            )
        if item_id in seen:
            raise UsageError(f"{path}: id {item_id!r} appears twice")
        seen.add(item_id)
    return items


def read_results(path: Path) -> dict[str, Result]:
    """Rows of an earlier run's results.csv (none when it does not exist)."""
    if not path.is_file():
        return {}
    names = {f.name for f in fields(Result)}
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        if not {"id", "file", "status"} <= set(reader.fieldnames or ()):
            raise CliError(f"{path} is not a results file of xtts batch (move it or use --results)")
        return {row["id"]: Result(**{k: v for k, v in row.items() if k in names}) for row in reader}


def write_results(path: Path, results: dict[str, Result]) -> None:
    with partial_file(path) as partial, partial.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, [f.name for f in fields(Result)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in results.values())


@grouped_options
def batch(
    input_file: Annotated[
        Path, typer.Argument(help="Text file (a line per item) or id|text table.")
    ],
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Folder for the audio files.")
    ],
    audio_format: Annotated[str, typer.Option("--format", help="wav, flac or ogg.")] = "wav",
    results: Annotated[
        Path | None,
        typer.Option("--results", help="Results CSV [default: OUTPUT_DIR/results.csv]."),
    ] = None,
    language: LanguageOption = "en",
    *,
    voice_options: VoiceOptions,
    sampling_options: SamplingOptions,
    speed: SpeedOption = 1.0,
    split_text: SplitOption = True,
    model_options: EngineOptions,
) -> None:
    """Synthesise every item of a file; items already done are skipped (resumable)."""
    suffix = f".{audio_format.lower().lstrip('.')}"
    if suffix not in FORMATS:
        raise UsageError(
            f"unknown format {audio_format!r}; use one of {', '.join(f[1:] for f in FORMATS)}"
        )
    items = read_items(input_file)
    setup = SpeechSetup.check(model_options, voice_options)
    output_dir.mkdir(parents=True, exist_ok=True)
    check_writable_dir(output_dir)
    results_path = results or output_dir / "results.csv"
    done = {k: r for k, r in read_results(results_path).items() if (output_dir / r.file).is_file()}
    todo = [(i, t) for i, t in items if not (output_dir / f"{i}{suffix}").is_file()]
    info(f"{len(items)} items: {len(items) - len(todo)} already done, {len(todo)} to synthesise")
    if not todo:
        return
    engine, chosen = setup.load()
    params = sampling_options.params(engine.config.sampling)
    options = StreamingOptions().stream_options(denoise=False)
    failed = 0
    with progress() as bar:
        task = bar.add_task("batch", total=len(todo), detail="")
        for item_id, text in todo:
            bar.update(task, detail=item_id)
            name = f"{item_id}{suffix}"
            try:
                with open_output(OutputTarget(output_dir / name), engine.sample_rate) as write:
                    utterance = Utterance(text, language, chosen, params, speed, split_text)
                    stats = run_stream(engine, utterance, options, write)
            except (CliError, ValueError, OSError) as exc:  # the item's fault: record, go on
                failed += 1
                done[item_id] = Result(item_id, name, "error", error=" ".join(str(exc).split()))
            else:
                done[item_id] = Result(
                    item_id,
                    name,
                    "ok",
                    f"{stats.audio_s:.3f}",
                    f"{stats.elapsed_s:.3f}",
                    f"{stats.ttfa_s:.3f}",
                    f"{stats.rtf:.3f}",
                    str(stats.codes),
                )
            write_results(results_path, done)
            bar.advance(task)
    info(f"{len(todo) - failed} synthesised, {failed} failed; results in {results_path}")
    if failed:
        raise CliError(f"{failed} of {len(todo)} items failed; see {results_path}")
