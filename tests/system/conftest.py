"""The system suite: real brokers, balancers and workers as processes on 127.0.0.1.

Every test under ``tests/system`` is marked ``system``: the quick run (``hatch test``) leaves
them out, ``hatch run system-tests:test`` (a step of ``.ci/run``) runs only them. The helper modules
beside this file have unique names, so test modules import them whatever else is collected; the
balancer and broker test helpers (``balancer_server``, ``broker_servers``) are importable too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "balancer"), str(HERE.parent / "broker")]

from balancer_server import write_model_files  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny random checkpoint and a voices_dir with one reference clip (``narrator``)."""
    return write_model_files(tmp_path_factory)
