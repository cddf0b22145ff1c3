"""Check a folder of downloaded wheels against the GPU image it is for (bench/device_kit.sh).

Why: the lent GPU machine reaches no package index, so the wheels carried to it are installed
with ``--no-deps`` and nothing there would say that one is missing until a step fails mid-run.
This script is the resolver's check, done here: every requirement of every wheel (its markers
evaluated for the target Python on Linux x86-64, extras that a requirement names followed) must
be met by another wheel of the kit, whose version must satisfy it, or by a package of the image
(``bench/device_image.txt``; its version checked where the list gives one). It also fails on a
wheel the image already has (it would shadow the image's copy), on two versions of one package
(pip refuses the install) and on a kit over the size limit, counted with the working tree that
travels with it.

Prints one markdown table (wheel, size) and the totals; exit status 1 with one line per problem.

    python bench/_device_kit.py .device-kit --python 3.12
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

#: Requirements no code path of the run reaches, so the kit leaves them out: (package, needed
#: by, why). docopt has no wheel on PyPI; num2words imports it only in its command-line tool.
NOT_NEEDED = {("docopt", "num2words"): "num2words imports it only in its command-line tool"}


@dataclass(frozen=True)
class Wheel:
    name: str
    version: Version
    path: Path
    requires: tuple[Requirement, ...]


def read_wheel(path: Path) -> Wheel:
    name, version, _, _ = parse_wheel_filename(path.name)
    with zipfile.ZipFile(path) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        headers = HeaderParser().parsestr(archive.read(metadata).decode())
    requires = tuple(Requirement(line) for line in headers.get_all("Requires-Dist") or [])
    return Wheel(canonicalize_name(name), version, path, requires)


def read_image(path: Path) -> dict[str, Version | None]:
    """Package name -> version (None where the list gives none); ``python`` is the interpreter."""
    image: dict[str, Version | None] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            image[canonicalize_name(name)] = Version(version) if version else None
    return image


def environment(python: str) -> dict[str, str]:
    """PEP 508 marker values of CPython ``python`` (e.g. 3.12) on Linux x86-64."""
    return {
        "python_version": python, "python_full_version": f"{python}.0", "os_name": "posix",
        "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
    }  # fmt: skip


def problems(wheels: list[Wheel], image: dict[str, Version | None], python: str) -> list[str]:
    """Every unmet requirement, shadowed image package and duplicate, one line each."""
    found: list[str] = []
    kit: dict[str, Wheel] = {}
    for wheel in wheels:
        if wheel.name in kit:
            found.append(
                f"two versions of {wheel.name}: {kit[wheel.name].path.name}, {wheel.path.name}"
            )
        if wheel.name in image:
            found.append(f"{wheel.path.name}: the image has {wheel.name} already")
        kit[wheel.name] = wheel
    env = environment(python)
    pending = [(wheel, "") for wheel in wheels]
    seen: set[tuple[str, str]] = set()
    while pending:
        wheel, extra = pending.pop()
        if (wheel.name, extra) in seen:
            continue
        seen.add((wheel.name, extra))
        for req in wheel.requires:
            if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
                continue
            name = canonicalize_name(req.name)
            where = f"{wheel.path.name}{f' [{extra}]' if extra else ''} needs {req}"
            if name in kit:
                if not req.specifier.contains(kit[name].version, prereleases=True):
                    found.append(f"{where}; the kit has {kit[name].version}")
                pending += [(kit[name], canonicalize_name(e)) for e in req.extras]
            elif name in image:
                version = image[name]
                if version is not None and not req.specifier.contains(version, prereleases=True):
                    found.append(f"{where}; the image has {version}")
            elif (name, wheel.name) not in NOT_NEEDED:
                found.append(f"{where}: neither the kit nor the image has it")
    return found


def tree_bytes() -> int:
    """Bytes of the working tree that travels: tracked files and untracked ones not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    files = (ROOT / name for name in listed.decode().split("\0") if name)
    return sum(path.stat().st_size for path in files if path.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kit", type=Path, help="the folder of wheels")
    parser.add_argument("--python", default="3.12", help="target Python, major.minor")
    parser.add_argument("--image", type=Path, default=ROOT / "bench" / "device_image.txt")
    parser.add_argument("--limit-mib", type=float, default=64.0, help="tree + wheels at most")
    args = parser.parse_args(argv)
    wheels = sorted((read_wheel(p) for p in args.kit.glob("*.whl")), key=lambda w: w.name)
    if not wheels:
        print(f"no wheels in {args.kit}", file=sys.stderr)
        return 1
    image = read_image(args.image)
    print("| wheel | KiB |\n|---|---|")
    for wheel in sorted(wheels, key=lambda w: -w.path.stat().st_size):
        print(f"| {wheel.path.name} | {wheel.path.stat().st_size / 1024:,.0f} |")
    kit_size = sum(w.path.stat().st_size for w in wheels)
    tree = tree_bytes()
    total = kit_size + tree
    limit = int(args.limit_mib * 2**20)
    print(
        f"\n{len(wheels)} wheels {kit_size / 2**20:.1f} MiB + working tree {tree / 2**20:.1f} MiB"
        f" = {total / 2**20:.1f} MiB of {args.limit_mib:g} MiB"
    )
    for (name, by), why in NOT_NEEDED.items():
        print(f"left out on purpose: {name} (needed by {by}: {why})")
    found = problems(wheels, image, args.python)
    if total > limit:
        found.append(f"{total / 2**20:.1f} MiB is over the {args.limit_mib:g} MiB limit")
    for line in found:
        print(f"PROBLEM: {line}", file=sys.stderr)
    if not found:
        print(f"complete: every requirement is met by the kit or the image (Python {args.python})")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
