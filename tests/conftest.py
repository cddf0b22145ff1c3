"""Shared test configuration: capability markers that skip themselves.

``@pytest.mark.requires_gpu`` skips the test unless torch is importable and sees a CUDA device.
torch is imported lazily, and only when a collected test carries the marker, so test runs in
torch-free environments stay torch-free.
"""

from __future__ import annotations

import functools

import pytest


@functools.cache
def _cuda_skip_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "needs torch with a CUDA device; torch is not installed"
    if not torch.cuda.is_available():
        return "needs a CUDA device; none is available"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("requires_gpu") is not None:
            reason = _cuda_skip_reason()
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
