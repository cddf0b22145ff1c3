"""``xtts batch``: a table of items to a folder plus results.csv; failures recorded; resumable."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import soundfile as sf
from cli_runner import assert_one_line_error, run, stderr

from xtts_cli.commands.batch import read_items
from xtts_cli.errors import UsageError

BATCH = ("batch", "--max-codes", "4", "--seed", "1", "--format", "ogg")


def results(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as file:
        return {row["id"]: row for row in csv.DictReader(file)}


def test_batch_records_results_and_resumes(tiny: Path, tmp_path: Path) -> None:
    (tmp_path / "metadata.csv").write_text('a|Hello there.\nb|A "quoted" line.\nc| \n')
    first = run(*BATCH, "metadata.csv", "-o", "out", "-m", tiny, cwd=tmp_path)
    assert_one_line_error(first, 1, "1 of 3 items failed", "results.csv")
    rows = results(tmp_path / "out" / "results.csv")
    assert [rows[i]["status"] for i in "abc"] == ["ok", "ok", "error"]
    assert "empty" in rows["c"]["error"]
    for item in "ab":
        assert float(rows[item]["ttfa_s"]) > 0 and float(rows[item]["rtf"]) > 0
        assert sf.info(str(tmp_path / "out" / f"{item}.ogg")).samplerate == 24000
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.ogg",
        "b.ogg",
        "results.csv",
    ]

    kept = (tmp_path / "out" / "b.ogg").stat().st_mtime_ns
    (tmp_path / "out" / "a.ogg").unlink()
    (tmp_path / "metadata.csv").write_text("a|Hello there.\nb|A line.\nc|Now it has text.\n")
    second = run(*BATCH, "metadata.csv", "-o", "out", "-m", tiny, cwd=tmp_path)
    assert second.returncode == 0, stderr(second)
    assert "1 already done, 2 to synthesise" in stderr(second)
    assert (tmp_path / "out" / "b.ogg").stat().st_mtime_ns == kept
    rows = results(tmp_path / "out" / "results.csv")
    assert [rows[i]["status"] for i in "abc"] == ["ok", "ok", "ok"]

    third = run(*BATCH, "metadata.csv", "-o", "out", "-m", tiny, cwd=tmp_path)
    assert third.returncode == 0 and "loaded" not in stderr(third)


def test_items_from_lines_and_tables(tmp_path: Path) -> None:
    lines = tmp_path / "book.txt"
    lines.write_text("First line.\n\nSecond line.\n")
    assert read_items(lines) == [("0001", "First line."), ("0002", "Second line.")]
    tsv = tmp_path / "items.tsv"
    tsv.write_text("x1\tTabbed text\n")
    assert read_items(tsv) == [("x1", "Tabbed text")]
    for content, message in [
        ("a|one\na|two\n", "twice"),
        ("../x|t\n", "file name"),
        ("solo\n", "no text"),
    ]:
        bad = tmp_path / "bad.csv"
        bad.write_text(content)
        with pytest.raises(UsageError, match=message):
            read_items(bad)


def test_batch_bad_format_and_foreign_results_file(tiny: Path, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("hi\n")
    result = run("batch", "in.txt", "-o", "out", "--format", "mp3", "-m", tiny, cwd=tmp_path)
    assert_one_line_error(result, 2, "'mp3'")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.csv").write_text("name,score\nx,1\n")
    result = run("batch", "in.txt", "-o", "out", "-m", tiny, cwd=tmp_path)
    assert_one_line_error(result, 1, "not a results file")
