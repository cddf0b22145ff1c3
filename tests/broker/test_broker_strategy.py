"""Routing strategies as the original defines them (original-spec.md §3.4), as pure functions."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from xtts_broker.strategy import Candidate, choose

# Registration order a, b, c, d; free slots 2, 1, 3, 1.
POOL = [Candidate("a", 2, 0), Candidate("b", 1, 1), Candidate("c", 3, 2), Candidate("d", 1, 3)]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("deep", "b"),  # fewest free (1): b and d tie, b registered first
        ("wide", "c"),  # most free (3)
    ],
)
def test_deterministic_strategies(strategy: str, expected: str) -> None:
    choice = choose(strategy, POOL)  # type: ignore[arg-type]
    assert choice is not None
    assert choice.candidate.id == expected
    assert choice.reason.startswith(f"{strategy}: {expected} ")
    assert choice.reason.endswith("of [c:3, a:2, b:1, d:1]")


def test_wide_breaks_ties_towards_the_latest_registered() -> None:
    tied = [Candidate("early", 2, 0), Candidate("late", 2, 5), Candidate("mid", 2, 3)]
    choice = choose("wide", tied)
    assert choice is not None and choice.candidate.id == "late"
    choice = choose("deep", tied)
    assert choice is not None and choice.candidate.id == "early"


def test_balancers_without_free_slots_are_never_chosen() -> None:
    pool = [Candidate("full", 0, 0), Candidate("free", 5, 1)]
    for strategy in ("deep", "wide", "random"):
        choice = choose(strategy, pool)
        assert choice is not None and choice.candidate.id == "free"


@pytest.mark.parametrize("strategy", ["deep", "wide", "random"])
def test_no_capacity_is_none(strategy: str) -> None:
    assert choose(strategy, []) is None  # type: ignore[arg-type]
    assert choose(strategy, [Candidate("full", 0, 0)]) is None  # type: ignore[arg-type]


def test_random_is_uniform_over_balancers_with_capacity() -> None:
    rng = random.Random(7)
    picks = Counter(choose("random", POOL, rng).candidate.id for _ in range(4000))  # type: ignore[union-attr]
    assert set(picks) == {"a", "b", "c", "d"}
    assert all(900 <= n <= 1100 for n in picks.values()), picks
