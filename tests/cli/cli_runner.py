"""Running the real ``xtts`` console script in a child process, as a user would.

The child gets a clean environment: no ``XTTS_*``/``HF_*`` variables, the config home and the
Hugging Face home inside the test's folder, stdin from /dev/null unless text is piped, and one
torch thread (two OpenMP threads spin-waiting on a shared 2-core machine make these runs several
times slower).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

XTTS = Path(sys.executable).with_name("xtts")
TEXT = "Hello there, this is a test."


def child_env(cwd: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child ``xtts`` (see the module doc)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("XTTS_", "HF_", "COQUI_"))}
    base |= {
        "OMP_NUM_THREADS": "1",
        "XDG_CONFIG_HOME": str(cwd / ".config"),
        "HF_HOME": str(cwd / ".hf"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "COLUMNS": "200",
    }
    return base | (extra or {})


def run(
    *args: str | Path,
    cwd: Path,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``xtts ARGS`` in ``cwd``; stdout stays bytes (raw PCM), stderr is checked by callers."""
    return subprocess.run(
        [str(XTTS), *map(str, args)],
        cwd=cwd,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        env=child_env(cwd, env),
        timeout=timeout,
        check=False,
    )


def popen(*args: str | Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``xtts ARGS`` in the background (for tests that signal it)."""
    return subprocess.Popen(
        [str(XTTS), *map(str, args)],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=child_env(cwd),
    )


def stderr(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode()


def assert_one_line_error(
    result: subprocess.CompletedProcess[bytes], code: int, *parts: str
) -> None:
    """Failed with ``code``, one ``xtts: error:`` line on stderr naming ``parts``, no traceback."""
    err = stderr(result)
    assert result.returncode == code, err
    lines = [line for line in err.splitlines() if line.startswith("xtts: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in lines[0], err
