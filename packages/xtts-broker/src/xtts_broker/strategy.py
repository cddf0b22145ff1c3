"""Routing strategies: which balancer gets the next stream (pure functions, no I/O).

Three strategies, named by ``service.strategy``; only balancers with at least one free slot are
considered:

- ``deep``: the **fewest** free slots (fill one machine before the next, so others stay fully free
  for big bursts); tie: the **earliest** registered.
- ``wide``: the **most** free slots (spread load); tie: the **latest** registered.
- ``random``: uniform among the balancers with a free slot.

"Free" is what the registry computes: the last reported idle count minus the streams the broker
routed there since (its reservations), so two concurrent clients never see the same last slot.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from xtts_broker.settings import Strategy

__all__ = ["Candidate", "Choice", "choose"]


@dataclass(frozen=True)
class Candidate:
    """One balancer as a strategy sees it."""

    id: str
    free: int
    """Slots it can take now (reported idle minus reservations)."""
    order: int
    """Registration order: lower registered earlier."""


@dataclass(frozen=True)
class Choice:
    """The chosen balancer and a log line saying why."""

    candidate: Candidate
    reason: str


def choose(
    strategy: Strategy, candidates: Sequence[Candidate], rng: random.Random | None = None
) -> Choice | None:
    """Pick a balancer for one stream, or ``None`` when none has a free slot.

    Args:
        strategy: ``deep``, ``wide`` or ``random``.
        candidates: every routable balancer, in any order.
        rng: random source for ``random`` (seed one for reproducible tests).
    """
    usable = [c for c in candidates if c.free > 0]
    if not usable:
        return None
    if strategy == "deep":
        pick = min(usable, key=lambda c: (c.free, c.order))
        why = "fewest free slots, earliest registered on a tie"
    elif strategy == "wide":
        pick = max(usable, key=lambda c: (c.free, c.order))
        why = "most free slots, latest registered on a tie"
    else:
        pick = (rng or random.Random()).choice(usable)
        why = f"uniform among {len(usable)} with a free slot"
    ranked = sorted(usable, key=lambda c: (-c.free, c.order))
    summary = ", ".join(f"{c.id}:{c.free}" for c in ranked)
    return Choice(pick, f"{strategy}: {pick.id} ({pick.free} free; {why}) of [{summary}]")
