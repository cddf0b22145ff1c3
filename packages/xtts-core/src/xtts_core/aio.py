"""asyncio helpers the services share.

Why :func:`wait_within` and not ``asyncio.wait_for``: before Python 3.12, ``wait_for`` returns
the inner result and swallows the caller's cancellation when both happen in the same loop
iteration. A session cancelled at that moment (its client left, the server is draining) then
carries on as if nothing happened; in the balancer that held a slot forever. ``asyncio.timeout``
(3.11+) does not have the race, but the packages support Python 3.10.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["wait_within"]

T = TypeVar("T")


async def wait_within(awaitable: Awaitable[T], timeout: float) -> T:
    """``await awaitable``, giving up after ``timeout`` seconds with ``asyncio.TimeoutError``
    (the inner work is cancelled); a cancellation of the caller always propagates."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    finally:
        task.cancel()  # a no-op once it has finished
    if not done:
        raise asyncio.TimeoutError(f"nothing within {timeout:g} s")
    return task.result()
