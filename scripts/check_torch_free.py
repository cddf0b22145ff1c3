"""Check that the plain ``xtts-core`` wheel and the ``xtts-broker`` wheel install without torch.

A CPU-only broker host installs ``xtts-broker``, which depends on plain ``xtts-core`` (no extra).
This script builds both wheels (or takes them with ``--wheel`` / ``--broker-wheel``), installs
core into a fresh virtual environment with its declared dependencies and asserts that ``import
xtts_core`` works there while ``import torch`` fails; then it installs the broker wheel into the
same environment and asserts that the resolved set still holds no torch, that ``xtts_broker``
imports and that the ``xtts-broker`` command runs.

Needs only Python and pip (the wheels are built with ``pip wheel``, which fetches hatchling).

    python scripts/check_torch_free.py                 # build both members, then check
    python scripts/check_torch_free.py --wheel dist/xtts_core-0.1.0-py3-none-any.whl \
        --broker-wheel dist/xtts_broker-0.1.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEMBER = ROOT / "packages" / "xtts-core"
BROKER = ROOT / "packages" / "xtts-broker"
FORBIDDEN = ("torch", "torchaudio")


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, text=True, capture_output=True, check=False
    )


def checked(*args: str | Path, cwd: Path | None = None) -> str:
    result = run(*args, cwd=cwd)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(map(str, args))}")
    return result.stdout


def build_wheel(out: Path, member: Path = MEMBER, stem: str = "xtts_core") -> Path:
    checked(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, member)
    wheels = sorted(out.glob(f"{stem}-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one {stem} wheel in {out}, found {wheels}")
    return wheels[0]


def installed_names(python: Path) -> set[str]:
    installed = checked(python, "-m", "pip", "list", "--format=freeze").split()
    return {line.split("==")[0].lower() for line in installed}


def check_broker(python: Path, env_dir: Path, wheel: Path, tmp: Path) -> None:
    """Install the broker wheel next to core and check it pulled no torch and runs."""
    checked(python, "-m", "pip", "install", "-q", wheel)
    pulled = sorted(installed_names(python).intersection(FORBIDDEN))
    if pulled:
        raise SystemExit(f"FAIL: xtts-broker pulled in {', '.join(pulled)}")
    location = checked(
        python, "-c", "import xtts_broker.app; print(xtts_broker.app.__file__)", cwd=tmp
    ).strip()
    if not Path(location).is_relative_to(env_dir):
        raise SystemExit(f"FAIL: xtts_broker imported from {location}, not from the venv")
    script = env_dir / ("Scripts/xtts-broker.exe" if os.name == "nt" else "bin/xtts-broker")
    version = checked(script, "--version", cwd=tmp).strip()
    if run(python, "-c", "import torch", cwd=tmp).returncode == 0:
        raise SystemExit("FAIL: torch is importable in the xtts-broker venv")
    print(f"ok: {version} installs and imports without torch")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="check this core wheel instead of building one")
    parser.add_argument(
        "--broker-wheel", type=Path, help="check this broker wheel instead of building one"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="torch-free-") as tmp_str:
        tmp = Path(tmp_str)
        wheel = args.wheel.resolve() if args.wheel else build_wheel(tmp / "dist")
        print(f"wheel: {wheel.name}")

        env_dir = tmp / "venv"
        venv.EnvBuilder(with_pip=True).create(env_dir)
        python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        checked(python, "-m", "pip", "install", "-q", wheel)

        names = installed_names(python)
        pulled = sorted(names.intersection(FORBIDDEN))
        if pulled:
            raise SystemExit(f"FAIL: plain xtts-core pulled in {', '.join(pulled)}")

        # Run from the temp dir so nothing in the repository can shadow the installed wheel.
        location = checked(
            python, "-c", "import xtts_core; print(xtts_core.__file__)", cwd=tmp
        ).strip()
        if not Path(location).is_relative_to(env_dir):
            raise SystemExit(f"FAIL: xtts_core imported from {location}, not from the venv")
        if run(python, "-c", "import torch", cwd=tmp).returncode == 0:
            raise SystemExit("FAIL: torch is importable in the plain xtts-core venv")

        print(f"ok: xtts-core imports without torch ({len(names)} distributions installed)")

        broker = (
            args.broker_wheel.resolve()
            if args.broker_wheel
            else build_wheel(tmp / "dist", BROKER, "xtts_broker")
        )
        print(f"wheel: {broker.name}")
        check_broker(python, env_dir, broker, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
