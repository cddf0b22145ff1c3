"""``xtts text normalize|split|tokenize``: human and ``--json`` output, stdin, bad language."""

from __future__ import annotations

import json
from pathlib import Path

from cli_runner import assert_one_line_error, run, stderr


def test_normalize_spells_numbers(tmp_path: Path) -> None:
    result = run("text", "normalize", "I paid 3 dollars.", "--json", cwd=tmp_path)
    assert result.returncode == 0, stderr(result)
    assert json.loads(result.stdout)["normalized"] == "i paid three dollars."
    piped = run("text", "normalize", "-l", "de-DE", cwd=tmp_path, stdin=b"Es ist 5 Uhr.")
    assert piped.stdout.decode().strip() == "es ist fünf uhr."


def test_split_packs_sentences_up_to_the_limit(tmp_path: Path) -> None:
    # Japanese is split by punctuation without spaCy, which keeps this test fast.
    result = run(
        "text",
        "split",
        "今日は晴れです。明日は雨です。",
        "-l",
        "ja",
        "--limit",
        "8",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, stderr(result)
    data = json.loads(result.stdout)
    assert data["segments"] == ["今日は晴れです。", "明日は雨です。"]
    assert data["limit"] == 8


def test_tokenize_shows_ids_and_pieces(tiny: Path, tmp_path: Path) -> None:
    result = run("text", "tokenize", "Hello there.", "-m", tiny, "--json", cwd=tmp_path)
    assert result.returncode == 0, stderr(result)
    data = json.loads(result.stdout)
    assert data["pieces"][0] == "[en]"
    assert len(data["ids"]) == len(data["pieces"]) > 1
    assert "[SPACE]" in data["pieces"]
    human = run(
        "text", "tokenize", "Hello there.", "--tokenizer", tiny / "vocab.json", cwd=tmp_path
    )
    assert human.stdout.decode().splitlines()[-1] == f"{len(data['ids'])} tokens"


def test_text_errors(tmp_path: Path) -> None:
    assert_one_line_error(
        run("text", "normalize", "hi", "-l", "xx", cwd=tmp_path), 2, "'xx'", "supported"
    )
    assert_one_line_error(run("text", "tokenize", "hi", cwd=tmp_path), 2, "--tokenizer")
    assert_one_line_error(run("text", "split", " ", cwd=tmp_path), 2, "empty")
