"""Import a script of ``bench/`` as a module, for the tests of what the benchmarks measure."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@contextmanager
def bench_script(name: str) -> Iterator[ModuleType]:
    """``bench/<name>.py`` imported (bench/ is not a package; its scripts import their
    siblings), and every bench module it brought in forgotten afterwards."""
    pytest.importorskip("torch")
    before = set(sys.modules)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        module = importlib.import_module(name)
    try:
        yield module
    finally:
        for added in set(sys.modules) - before:
            if added.startswith("bench_"):
                sys.modules.pop(added, None)
