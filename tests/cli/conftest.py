"""Session fixtures of the CLI tests: one tiny model, written by the CLI itself, and a clip.

The tests run the installed ``xtts`` console script in subprocesses (see ``cli_runner.py``). The
tiny checkpoint is written once per session by ``xtts model make-test-checkpoint``; tests treat
it as read-only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from cli_runner import run, stderr

if importlib.util.find_spec("xtts_cli") is None:  # an environment without the CLI member
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random checkpoint written through ``xtts model make-test-checkpoint`` (read-only)."""
    root = tmp_path_factory.mktemp("cli-model")
    result = run("model", "make-test-checkpoint", "tiny", "--size", "tiny", cwd=root)
    assert result.returncode == 0, stderr(result)
    assert "random weights" in stderr(result) and "noise" in stderr(result)
    return root / "tiny"


@pytest.fixture(scope="session")
def reference_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seconds of a voiced-sounding 22050 Hz clip (harmonics with a gliding pitch)."""
    import numpy as np
    import soundfile as sf

    rate = 22050
    t = np.arange(3 * rate) / rate
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 0.5 * t)) / rate
    wav = sum(np.sin(k * phase) / k for k in range(1, 8))
    path = tmp_path_factory.mktemp("cli-ref") / "reference.wav"
    sf.write(path, (0.3 * wav / np.abs(wav).max()).astype(np.float32), rate)
    return path
