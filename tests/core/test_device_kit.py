"""``bench/_device_kit.py``: the check that a kit of wheels is complete for the GPU image.

The kit is installed there with ``--no-deps``, so this check is all that stands between a missing
wheel and a run that fails half-way on the GPU. Each test builds small real wheel files (a zip
with a ``METADATA``) and an image list, and checks what the script finds.
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def kit_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_device_kit", BENCH / "_device_kit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_device_kit"] = module
    spec.loader.exec_module(module)
    return module


def wheel(folder: Path, name: str, version: str, *requires: str) -> Path:
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {req}" for req in requires]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", "\n".join(lines))
    return path


def check(module: ModuleType, folder: Path, image: str, python: str = "3.12") -> list[str]:
    (folder / "image.txt").write_text(image)
    wheels = [module.read_wheel(p) for p in sorted(folder.glob("*.whl"))]
    found: list[str] = module.problems(wheels, module.read_image(folder / "image.txt"), python)
    return found


def test_a_complete_kit_passes(kit_check: ModuleType, tmp_path: Path) -> None:
    wheel(tmp_path, "app", "1.0", "lib>=2", "numpy", "old-only; python_version < '3.11'")
    wheel(tmp_path, "lib", "2.1", "torch>=2.4", "dev-tool; extra == 'dev'")
    assert check(kit_check, tmp_path, "numpy\ntorch==2.11.0\n") == []


def test_a_requirement_nobody_has_is_named(kit_check: ModuleType, tmp_path: Path) -> None:
    wheel(tmp_path, "app", "1.0", "lib>=2", "numpy")
    assert check(kit_check, tmp_path, "numpy\n") == [
        "app-1.0-py3-none-any.whl needs lib>=2: neither the kit nor the image has it"
    ]


def test_versions_are_checked_in_the_kit_and_the_image(
    kit_check: ModuleType, tmp_path: Path
) -> None:
    wheel(tmp_path, "app", "1.0", "lib>=2", "torch>=2.12")
    wheel(tmp_path, "lib", "1.5")
    assert check(kit_check, tmp_path, "torch==2.11.0\n") == [
        "app-1.0-py3-none-any.whl needs lib>=2; the kit has 1.5",
        "app-1.0-py3-none-any.whl needs torch>=2.12; the image has 2.11.0",
    ]


def test_markers_follow_the_target_python(kit_check: ModuleType, tmp_path: Path) -> None:
    wheel(tmp_path, "app", "1.0", "backport; python_version < '3.12'")
    assert check(kit_check, tmp_path, "", "3.12") == []
    assert check(kit_check, tmp_path, "", "3.11") == [
        'app-1.0-py3-none-any.whl needs backport; python_version < "3.12": '
        "neither the kit nor the image has it"
    ]


def test_extras_named_by_a_requirement_are_followed(kit_check: ModuleType, tmp_path: Path) -> None:
    wheel(tmp_path, "app", "1.0", "lib[fast]")
    wheel(tmp_path, "lib", "1.0", "speedup; extra == 'fast'")
    assert check(kit_check, tmp_path, "") == [
        'lib-1.0-py3-none-any.whl [fast] needs speedup; extra == "fast": '
        "neither the kit nor the image has it"
    ]


def test_shadowing_the_image_and_two_versions_fail(kit_check: ModuleType, tmp_path: Path) -> None:
    wheel(tmp_path, "numpy", "2.0")
    wheel(tmp_path, "lib", "1.0")
    wheel(tmp_path, "lib", "1.1")
    found = check(kit_check, tmp_path, "numpy\n")
    assert "numpy-2.0-py3-none-any.whl: the image has numpy already" in found
    assert any(line.startswith("two versions of lib") for line in found)


def test_the_kit_list_meets_its_own_check(kit_check: ModuleType) -> None:
    """Every line of bench/device_kit.txt is pinned, once, and none is in the image."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    image = kit_check.read_image(BENCH / "device_image.txt")
    names = []
    for line in (BENCH / "device_kit.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            assert str(req.specifier).startswith("=="), line
            names.append(canonicalize_name(req.name))
    assert len(names) == len(set(names))
    assert not set(names) & set(image)
    assert {"torch", "numpy", "tokenizers", "transformers"} <= set(image)
