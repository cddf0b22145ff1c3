"""Install torchaudio 2.11.0 in pure-Python mode into the running interpreter's environment.

coqui-tts 0.28.0 (the parity reference) refuses to import without torchaudio, but PyPI's newest
torchaudio (2.11.0) is a CUDA build that pins torch==2.11.0 and whose compiled extension cannot
load next to CPU torch 2.13.0. So: download the wheel, install it with --no-deps, and delete the
.so files in ``<site-packages>/torchaudio/lib/``; torchaudio then skips its extension and imports
in pure-Python mode, which covers what XTTS uses (MelSpectrogram, functional.resample).
See shared/spec/xtts-reference.md §3.1.

Idempotent: when torchaudio 2.11.0 is installed and its lib/ holds no .so file it does nothing,
so Hatch scripts can call it before every run. Used by the `parity` and `bench` Hatch envs.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

VERSION = "2.11.0"


def installed_version() -> str | None:
    """The installed torchaudio's version without its local label (``2.11.0+cpu`` -> ``2.11.0``)."""
    try:
        return metadata.version("torchaudio").split("+", 1)[0]
    except metadata.PackageNotFoundError:
        return None


def lib_dir() -> Path:
    dist = metadata.distribution("torchaudio")
    return Path(str(dist.locate_file("torchaudio"))) / "lib"


def shared_objects() -> list[Path]:
    directory = lib_dir()
    return sorted(directory.glob("*.so")) if directory.is_dir() else []


def install() -> None:
    pip = [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory(prefix="torchaudio-") as tmp:
        subprocess.run(
            [
                *pip,
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                tmp,
                f"torchaudio=={VERSION}",
            ],
            check=True,
        )
        wheels = sorted(Path(tmp).glob("torchaudio-*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"expected one torchaudio wheel in {tmp}, found {wheels}")
        subprocess.run(
            [*pip, "install", "--no-deps", "--force-reinstall", str(wheels[0])], check=True
        )


def main() -> int:
    if installed_version() != VERSION:
        install()
    removed = shared_objects()
    for path in removed:
        path.unlink()
    if removed:
        names = ", ".join(p.name for p in removed)
        print(f"torchaudio {VERSION}: removed {names} (pure-Python mode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
