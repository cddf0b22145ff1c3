"""``xtts model make-test-checkpoint`` and ``xtts model check``."""

from __future__ import annotations

import json
from pathlib import Path

from cli_runner import assert_one_line_error, run, stderr


def test_make_test_checkpoint_refuses_to_overwrite(tiny: Path) -> None:
    before = (tiny / "model.pth").stat().st_mtime_ns
    result = run("model", "make-test-checkpoint", tiny.name, cwd=tiny.parent)
    assert_one_line_error(result, 2, "already holds", "--force")
    assert (tiny / "model.pth").stat().st_mtime_ns == before
    assert not list(tiny.parent.glob(".*partial*"))


def test_check_a_good_checkpoint(tiny: Path) -> None:
    result = run("model", "check", tiny, "--json", cwd=tiny.parent)
    assert result.returncode == 0, stderr(result)
    summary = json.loads(result.stdout)
    assert summary["gpt"] == {
        "layers": 2, "width": 64, "heads": 4, "text_tokens": 300, "audio_tokens": 1026,
    }  # fmt: skip
    assert summary["speakers"] == ["Other Speaker", "Random Speaker"]
    assert "en" in summary["languages"] and summary["sample_rate"] == 24000


def test_check_names_what_is_wrong(tiny: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("model.pth", "vocab.json"):
        (bad / name).symlink_to(tiny / name)
    result = run("model", "check", bad, cwd=tmp_path)
    assert_one_line_error(result, 1, "missing model file", "config.json")
    config = json.loads((tiny / "config.json").read_text())
    config["model_args"]["gpt_layers"] = 3
    (bad / "config.json").write_text(json.dumps(config))
    result = run("model", "check", bad, cwd=tmp_path)
    assert_one_line_error(result, 1, "does not fit its config.json", "missing")
