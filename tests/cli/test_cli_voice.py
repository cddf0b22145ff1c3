"""``xtts voice clone/list/info``, and speaking with a saved voice."""

from __future__ import annotations

import json
from pathlib import Path

from cli_runner import assert_one_line_error, run, stderr


def test_clone_info_and_speak_with_a_saved_voice(
    tiny: Path, reference_wav: Path, tmp_path: Path
) -> None:
    result = run(
        "voice", "clone", reference_wav, "-o", "me.pt", "--name", "me", "-m", tiny, cwd=tmp_path
    )
    assert result.returncode == 0, stderr(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["me.pt"]
    info = run("voice", "info", "me.pt", "--json", cwd=tmp_path)
    assert info.returncode == 0, stderr(info)
    voices = json.loads(info.stdout)["voices"]
    assert [v["name"] for v in voices] == ["me"]
    assert voices[0]["gpt_cond_latent"] == [1, 32, 64]
    assert voices[0]["speaker_embedding"] == [1, 512, 1]
    args = ("-m", tiny, "--voice", "me.pt", "-t", "Hi.", "--max-codes", "4", "-o", "x.wav")
    synth = run("--quiet", "synth", *args, cwd=tmp_path)
    assert synth.returncode == 0, stderr(synth)
    assert stderr(synth) == "", "--quiet leaves stderr to errors"
    assert (tmp_path / "x.wav").stat().st_size > 44


def test_list_and_info_of_named_speakers(tiny: Path, tmp_path: Path) -> None:
    listed = run("voice", "list", "-m", tiny, "--json", cwd=tmp_path)
    assert listed.returncode == 0, stderr(listed)
    assert json.loads(listed.stdout) == ["Other Speaker", "Random Speaker"]
    info = run("voice", "info", tiny / "speakers_xtts.pth", cwd=tmp_path)
    assert info.returncode == 0, stderr(info)
    assert (
        "2 voice(s)" in info.stdout.decode()
        and "Random Speaker: latents (1, 32, 64)" in info.stdout.decode()
    )


def test_voice_errors(tiny: Path, tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_text("junk")
    assert_one_line_error(run("voice", "info", "junk.pt", cwd=tmp_path), 1, "junk.pt")
    assert_one_line_error(run("voice", "list", cwd=tmp_path), 2, "--model-dir")
    result = run("voice", "clone", "missing.wav", "-o", "v.pt", "-m", tiny, cwd=tmp_path)
    assert_one_line_error(result, 1, "missing.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pt"]
