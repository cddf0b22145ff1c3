"""``xtts bench``: timing report of streamed synthesis."""

from __future__ import annotations

import json
from pathlib import Path

from cli_runner import run, stderr


def test_bench_reports_ttfa_and_rtf(tiny: Path, tmp_path: Path) -> None:
    args = ("--runs", "1", "--max-codes", "6", "--json", "--device", "cpu")
    result = run("bench", "-m", tiny, *args, cwd=tmp_path)
    assert result.returncode == 0, stderr(result)
    report = json.loads(result.stdout)
    assert report["device"] == "cpu" and report["dtype"] == "fp32"
    assert len(report["runs"]) == 1
    assert report["median_ttfa_s"] > 0 and report["median_rtf"] > 0
    assert report["runs"][0]["audio_s"] > 0
    assert "run 1/1" in stderr(result)
    assert list(tmp_path.iterdir()) == []
