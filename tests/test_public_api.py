"""Each service package's ``__init__`` exports exactly its curated public API."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["xtts_balancer", "xtts_broker", "xtts_core.protocol"])
def test_every_exported_name_exists(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__, package
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    public = {name for name, value in vars(module).items() if not name.startswith("_")}
    modules = {name for name in public if type(vars(module)[name]).__name__ == "module"}
    assert set(module.__all__) - {"__version__"} <= public - modules
