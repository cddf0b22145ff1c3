"""wait_within: asyncio.wait_for's timeout without its lost cancellations."""

from __future__ import annotations

import asyncio

import pytest

from xtts_core.aio import wait_within


def test_returns_the_result_in_time() -> None:
    async def main() -> int:
        queue: asyncio.Queue[int] = asyncio.Queue()
        queue.put_nowait(7)
        return await wait_within(queue.get(), 1.0)

    assert asyncio.run(main()) == 7


def test_times_out_and_cancels_the_inner_work() -> None:
    async def main() -> bool:
        inner = asyncio.ensure_future(asyncio.sleep(10))
        with pytest.raises(asyncio.TimeoutError):
            await wait_within(inner, 0.05)
        await asyncio.sleep(0)
        return inner.cancelled()

    assert asyncio.run(main())


def test_a_cancellation_that_meets_the_result_is_not_lost() -> None:
    """The caller is cancelled in the same loop iteration as the item arrives: the cancel must
    win (asyncio.wait_for before 3.12 returned the item instead)."""

    async def main() -> str:
        queue: asyncio.Queue[str] = asyncio.Queue()
        waiter = asyncio.ensure_future(wait_within(queue.get(), 5.0))
        await asyncio.sleep(0.01)  # the waiter is now blocked on the queue
        queue.put_nowait("event")
        waiter.cancel()
        try:
            await waiter
        except asyncio.CancelledError:
            return "cancelled"
        return "swallowed"

    assert asyncio.run(main()) == "cancelled"
