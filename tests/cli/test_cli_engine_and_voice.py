"""The engine and voice every command shares: the same flags and the same one-line errors in
``synth``, ``batch``, ``bench`` and ``voice clone``, all before the model loads."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import soundfile as sf
from cli_runner import assert_one_line_error, run, stderr

COMMANDS = {
    "synth": ["synth", "-t", "hi", "-o", "x.wav"],
    "batch": ["batch", "items.txt", "-o", "out"],
    "bench": ["bench", "--runs", "1"],
}
MODEL_ERRORS = {
    "no model": ([], 2, ["no model given", "--model-dir"]),
    "missing files": (["-m", "half"], 1, ["missing model files", "model.pth", "vocab.json"]),
}
VOICE_ERRORS = {
    "two voices": (["-s", "a", "--voice", "v.pt"], 2, ["choose one voice"]),
    "unknown speaker": (["-s", "Random Speakr"], 2, ["closest: Random Speaker"]),
    "unreadable voice": (["--voice", "junk.pt"], 1, ["junk.pt"]),
}


@pytest.fixture
def folder(tiny: Path, reference_wav: Path, tmp_path: Path) -> Path:
    """A working folder with an item list, a clip, a junk voice and a half-copied model."""
    (tmp_path / "items.txt").write_text("Hello.\n")
    (tmp_path / "ref.wav").symlink_to(reference_wav)
    (tmp_path / "junk.pt").write_text("junk")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").symlink_to(tiny / "config.json")
    return tmp_path


def test_every_command_names_a_bad_model_or_voice_in_one_line_before_loading(
    tiny: Path, folder: Path
) -> None:
    before = sorted(p.name for p in folder.iterdir())
    cases: list[tuple[list[str], int, list[str]]] = []
    for command in [*COMMANDS.values(), ["voice", "clone", "ref.wav", "-o", "v.pt"]]:
        cases += [([*command, *args], code, parts) for args, code, parts in MODEL_ERRORS.values()]
    for command in COMMANDS.values():
        cases += [
            ([*command, "-m", str(tiny), *args], code, parts)
            for args, code, parts in VOICE_ERRORS.values()
        ]

    def xtts(args: list[str]) -> subprocess.CompletedProcess[bytes]:
        return run(*args, cwd=folder)

    with ThreadPoolExecutor(2) as pool:  # independent runs: use both cores
        results = list(pool.map(xtts, [args for args, _, _ in cases]))
    for (args, code, parts), result in zip(cases, results, strict=True):
        assert_one_line_error(result, code, *parts)
        assert "loaded" not in stderr(result), args
    assert sorted(p.name for p in folder.iterdir()) == before, "no output may be left behind"


def test_bench_speaks_with_a_saved_voice(tiny: Path, tmp_path: Path) -> None:
    args = ("--voice", tiny / "speakers_xtts.pth", "--runs", "1", "--max-codes", "3", "--json")
    result = run("bench", "-m", tiny, *args, cwd=tmp_path)
    assert result.returncode == 0, stderr(result)
    assert "no voice given" not in stderr(result)
    assert json.loads(result.stdout)["runs"][0]["audio_s"] > 0


def test_batch_takes_every_sampling_flag(tiny: Path, tmp_path: Path) -> None:
    """Greedy decoding (``--no-sample``) ignores the seed: two seeds, the same audio."""
    (tmp_path / "items.txt").write_text("Hello there.\n")
    flags = ("--no-sample", "--top-k", "5", "--top-p", "0.9", "--repetition-penalty", "2")

    def batch(seed: str) -> subprocess.CompletedProcess[bytes]:
        out = ("-o", f"out{seed}", "--max-codes", "6", "-m", str(tiny))
        return run("batch", "items.txt", *out, *flags, "--seed", seed, cwd=tmp_path)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(batch, ["1", "2"]))
    for result in results:
        assert result.returncode == 0, stderr(result)
    first, second = (sf.read(tmp_path / f"out{s}" / "0001.wav")[0] for s in "12")
    assert first.size > 0 and (first == second).all()
