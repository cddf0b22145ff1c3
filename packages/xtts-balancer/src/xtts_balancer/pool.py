"""Slots: who may use which worker, first free slot in worker order, with a bounded FIFO queue.

A session leases one slot per utterance (a websocket: while it has something to say; an HTTP
request: for its whole text), so capacity is the number of free slots over the warm workers, and
``GET /workers/idle`` reports exactly that. When no slot is free a session waits in a FIFO queue
of at most ``max_queue`` entries for at most ``queue_timeout_s``; beyond either it is refused
(the caller answers with an ElevenLabs-style error and close 1013). Slots are handed to waiters
in arrival order the moment one frees or a worker becomes ready: no polling, and a socket's next
turn queues behind those already waiting.

With ``capacity_aware`` a worker's slots are further limited to the streams it last reported it
can keep faster than real time (:attr:`WorkerHandle.realtime_streams`; a worker that has not
reported yet keeps its fixed slots); call :meth:`SlotPool.dispatch` when a report arrives.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

from xtts_balancer.supervisor import WorkerHandle

__all__ = ["Lease", "NoCapacityError", "SlotPool"]


class NoCapacityError(Exception):
    """No slot: the queue is full, or the wait timed out. ``str(exc)`` is the client message;
    ``queue_full`` says the queue (of at least one place) was full, rather than every slot
    staying busy for the whole wait or no queue being configured."""

    def __init__(self, message: str, *, queue_full: bool = False) -> None:
        super().__init__(message)
        self.queue_full = queue_full


@dataclass(eq=False)
class Lease:
    """One slot of one worker incarnation; give it back with :meth:`SlotPool.release`."""

    worker: WorkerHandle
    incarnation: int
    released: bool = False


class SlotPool:
    """First-free-slot assignment over ``workers`` (see the module docstring)."""

    def __init__(
        self, workers: list[WorkerHandle], slots_per_worker: int, max_queue: int,
        queue_timeout_s: float, capacity_aware: bool = False,
    ) -> None:  # fmt: skip
        self._workers = workers
        self._slots = slots_per_worker
        self._capacity_aware = capacity_aware
        self._max_queue = max_queue
        self._timeout = queue_timeout_s
        self._waiters: collections.deque[asyncio.Future[Lease]] = collections.deque()

    @property
    def free_slots(self) -> int:
        return sum(max(0, self.slots_of(w) - w.busy) for w in self._workers if w.state == "ready")

    @property
    def capacity(self) -> int:
        """Slots of the warm workers, busy or not."""
        return sum(self.slots_of(w) for w in self._workers if w.state == "ready")

    def slots_of(self, worker: WorkerHandle) -> int:
        """Streams ``worker`` may hold now: its fixed slots, or fewer if it is capacity-aware
        and reported that fewer stay real time."""
        if not self._capacity_aware or worker.realtime_streams is None:
            return self._slots
        return min(self._slots, worker.realtime_streams)

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> Lease:
        """A slot now, or after waiting in the queue.

        Raises:
            NoCapacityError: the queue is full or the wait ran past ``queue_timeout_s``.
        """
        if not self._waiters:
            lease = self._take()
            if lease is not None:
                return lease
        if len(self._waiters) >= self._max_queue:
            if not self._max_queue:
                raise NoCapacityError("All workers are busy; please try again later.")
            raise NoCapacityError(
                "All workers are busy and the wait queue is full; please try again later.",
                queue_full=True,
            )
        waiter: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self._timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # handed a slot just as the wait ended
            waiter.cancel()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise NoCapacityError(
                f"No worker became free within {self._timeout:g} seconds; please try again later."
            ) from None
        return waiter.result()

    def release(self, lease: Lease) -> None:
        """Give a slot back (once; a lease of a dead incarnation frees nothing)."""
        if lease.released:
            return
        lease.released = True
        if lease.worker.incarnation == lease.incarnation and lease.worker.busy > 0:
            lease.worker.busy -= 1
        self.dispatch()

    def dispatch(self) -> None:
        """Hand free slots to waiters in FIFO order (call when a slot frees or a worker is ready)."""
        while self._waiters:
            waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            lease = self._take()
            if lease is None:
                return
            self._waiters.popleft()
            waiter.set_result(lease)

    def _take(self) -> Lease | None:
        for worker in self._workers:
            if worker.state == "ready" and worker.busy < self.slots_of(worker):
                worker.busy += 1
                return Lease(worker, worker.incarnation)
        return None
