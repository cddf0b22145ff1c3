"""``xtts synth``: one-shot and streamed output, stdin/stdout piping, formats, and bad input."""

from __future__ import annotations

import math
import os
import pty
import signal
import subprocess
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from cli_runner import TEXT, XTTS, assert_one_line_error, child_env, popen, run, stderr

LSB = 1 / 32767  # one step of the 16-bit output; streamed and one-shot float audio differ by ~1e-8
SYNTH = ("synth", "--seed", "3", "--max-codes", "12", "--speaker", "Random Speaker")


def pcm(path: Path) -> np.ndarray:
    data: np.ndarray
    data, rate = sf.read(path, dtype="float32")
    assert rate == 24000
    return data


@pytest.fixture(scope="module")
def one_shot(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "one.wav"
    result = run(*SYNTH, "-m", tiny, "-t", TEXT, "-o", out, cwd=out.parent)
    assert result.returncode == 0, stderr(result)
    assert "real-time factor" in stderr(result)
    return out


def test_one_shot_writes_a_wav_and_nothing_else(one_shot: Path) -> None:
    with wave.open(str(one_shot)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        assert w.getnframes() > 0
    assert sorted(p.name for p in one_shot.parent.iterdir()) == ["one.wav"]


def test_stream_equals_one_shot_and_reports_latency(
    tiny: Path, one_shot: Path, tmp_path: Path
) -> None:
    result = run(*SYNTH, "-m", tiny, "-t", TEXT, "-o", "s.wav", "--stream", cwd=tmp_path)
    err = stderr(result)
    assert result.returncode == 0, err
    for label in ("time to first audio", "real-time factor", "chunk latency"):
        assert label in err
    streamed, expected = pcm(tmp_path / "s.wav"), pcm(one_shot)
    assert streamed.shape == expected.shape
    assert float(np.abs(streamed - expected).max()) <= LSB + 1e-9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.wav"]


def test_stdin_to_raw_pcm_on_stdout(tiny: Path, one_shot: Path, tmp_path: Path) -> None:
    result = run(
        *SYNTH, "-m", tiny, "-o", "-", "--stream", "--stream-first-chunk-size", "2",
        cwd=tmp_path, stdin=TEXT.encode(),
    )  # fmt: skip
    assert result.returncode == 0, stderr(result)
    raw = np.frombuffer(result.stdout, "<i2").astype(np.float32) / 32767
    expected = pcm(one_shot)
    assert raw.shape == expected.shape
    assert float(np.abs(raw - expected).max()) <= 2 * LSB
    assert "time to first audio" in stderr(result)


def test_explicit_files_text_file_reference_and_resampled_flac(
    tiny: Path, reference_wav: Path, tmp_path: Path
) -> None:
    (tmp_path / "in.txt").write_text("Hi.", encoding="utf-8")
    result = run(
        "synth", "--config", tiny / "config.json", "--checkpoint", tiny / "model.pth",
        "--tokenizer", tiny / "vocab.json", "--reference", reference_wav, "--max-codes", "6", "--seed", "3",
        "-f", "in.txt", "-l", "en-US", "-o", "out.flac", "--sample-rate", "16000",
        "--noise-reduction", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, stderr(result)
    assert "cloned a voice from 1 clip" in stderr(result)
    info = sf.info(str(tmp_path / "out.flac"))
    assert info.samplerate == 16000
    assert info.frames == math.ceil(256 * (4 * 6 * 24000 // 22050) * 2 / 3)  # 6 codes, resampled


BAD_BEFORE_LOADING = {
    "empty text": (["-t", "  ", "-o", "x.wav"], 2, ["text is empty"]),
    "unknown extension": (["-t", "hi", "-o", "x.mp3"], 2, ["'.mp3'", ".wav, .flac, .ogg"]),
    "missing output folder": (["-t", "hi", "-o", "no/x.wav"], 1, ["output folder does not exist"]),
    "unsupported language": (["-t", "hi", "-o", "x.wav", "-l", "xx"], 2, ["'xx'", "supported: ar"]),
    "stream cannot resample": (
        ["-t", "hi", "-o", "x.wav", "--stream", "--sample-rate", "16000"],
        2,
        ["cannot resample"],
    ),
    "two voices": (["-t", "hi", "-o", "x.wav", "-s", "a", "--voice", "v.pt"], 2, ["choose one"]),
    "missing reference": (["-t", "hi", "-o", "x.wav", "-r", "none.wav"], 1, ["none.wav"]),
    "text and text file": (["-t", "hi", "-f", "t.txt", "-o", "x.wav"], 2, ["not both"]),
    "bad sampling value": (["-t", "hi", "-o", "x.wav", "--temperature", "0"], 2, ["temperature"]),
    "unknown flag": (["-t", "hi", "-o", "x.wav", "--bogus"], 2, ["--bogus", "xtts synth --help"]),
    "no text": (["-o", "x.wav"], 2, ["text is empty"]),
}


@pytest.mark.parametrize(
    ("args", "code", "parts"), BAD_BEFORE_LOADING.values(), ids=BAD_BEFORE_LOADING.keys()
)
def test_bad_input_fails_fast_with_one_line(
    tiny: Path, tmp_path: Path, args: list[str], code: int, parts: list[str]
) -> None:
    result = run("synth", "-m", tiny, *args, cwd=tmp_path)
    assert_one_line_error(result, code, *parts)
    assert "loaded" not in stderr(result), "the model must not load for a bad command line"
    assert not list(tmp_path.glob("x*")), "no output file may be left behind"


def test_raw_pcm_is_not_written_to_a_terminal(tiny: Path, tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [str(XTTS), "synth", "-m", str(tiny), "-t", "hi", "-o", "-"], cwd=tmp_path,
            stdin=subprocess.DEVNULL, stdout=terminal, stderr=subprocess.PIPE,
            env=child_env(tmp_path), timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(terminal)
        os.close(controller)
    assert_one_line_error(result, 2, "refusing to write raw PCM to a terminal")


def test_missing_model_files_are_all_named(tiny: Path, tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_bytes((tiny / "config.json").read_bytes())
    result = run("synth", "-m", "m", "-t", "hi", "-o", "x.wav", cwd=tmp_path)
    assert_one_line_error(result, 1, "model.pth", "vocab.json")
    assert_one_line_error(run("synth", "-t", "hi", "-o", "x.wav", cwd=tmp_path), 2, "--model-dir")


def test_bad_voice_and_text_fail_before_the_model_loads(tiny: Path, tmp_path: Path) -> None:
    (tmp_path / "ref.wav").write_text("not audio")
    custom = {
        "gpt_cond_latent": torch.zeros(1, 32, 64),
        "speaker_embedding": torch.zeros(1, 512, 1),
    }
    torch.save({"Custom Voice": custom}, tmp_path / "custom.pth")
    (tmp_path / "m").mkdir()
    for name in ("config.json", "model.pth", "vocab.json"):  # a model without speakers_xtts.pth
        (tmp_path / "m" / name).symlink_to(tiny / name)
    cases = [
        (["--speakers", "custom.pth", "-s", "Custom Voic"], 2, ["closest: Custom Voice"]),
        (["-m", "m"], 2, ["no voice given"]),
        (["-s", "Random Speakr"], 2, ["'Random Speakr'", "closest: Random Speaker"]),
        (["-r", "ref.wav"], 1, ["cannot read reference audio ref.wav"]),
        (["--voice", "ref.wav"], 1, ["ref.wav"]),
        (["--no-split-text", "-t", "word " * 600], 2, ["tokens"]),  # over the 402-token limit
    ]
    if not torch.cuda.is_available():  # asking for a missing device is one line too
        cases.append((["--device", "cuda"], 1, ["CUDA is not available"]))

    def synth(args: list[str]) -> subprocess.CompletedProcess[bytes]:
        return run("synth", "-m", tiny, "-t", "hi", "-o", "x.wav", *args, cwd=tmp_path)

    with ThreadPoolExecutor(2) as pool:  # independent runs: use both cores
        results = list(pool.map(synth, [args for args, _, _ in cases]))
    for (_, code, parts), result in zip(cases, results, strict=True):
        assert_one_line_error(result, code, *parts)
        assert "loaded" not in stderr(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["custom.pth", "m", "ref.wav"]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run("--debug", "synth", "-t", " ", "-o", "x.wav", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" in stderr(result)
    assert "UsageError: text is empty" in stderr(result)


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "kill"]
)
def test_interrupted_stream_leaves_the_old_file_and_no_partial(
    tiny: Path, tmp_path: Path, signum: int, code: int
) -> None:
    """While streaming, the partial WAV beside the target is valid; Ctrl-C or kill removes it."""
    (tmp_path / "x.wav").write_bytes(b"old")
    args: list[str | Path] = [*SYNTH[:3], "-m", tiny, "-t", TEXT, "-o", "x.wav", "--stream"]
    with popen(
        *args, "--stream-first-chunk-size", "1", "--stream-chunk-size", "1", cwd=tmp_path
    ) as child:
        deadline = time.monotonic() + 120
        partial: list[Path] = []
        while not partial and child.poll() is None and time.monotonic() < deadline:
            partial = [p for p in tmp_path.glob("x.*.partial.wav") if p.stat().st_size > 44]
            time.sleep(0.05)
        assert partial, "the partial file never grew"
        with wave.open(str(partial[0])) as w:  # playable while growing: the header is current
            assert w.getframerate() == 24000 and w.getnframes() > 0
        child.send_signal(signum)
        child.wait(timeout=60)
    assert child.returncode == code
    assert (tmp_path / "x.wav").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]
