"""``forced(n)``: sampling parameters that give exactly ``n`` codes, for the core tests.

The stop code stays masked until the ``n``-th code, so a random-weight model speaks a known
length; ``seed`` makes the codes reproducible.
"""

from __future__ import annotations

from xtts_core.sampling import SamplingParams


def forced(n: int, seed: int = 7) -> SamplingParams:
    """Seeded sampling of exactly ``n`` codes."""
    return SamplingParams(seed=seed, min_new_codes=n, max_new_codes=n)
