"""Single-use tokens: accepted once, by whoever holds one, until they expire."""

from __future__ import annotations

from xtts_core.single_use import SingleUseTokens


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_token_is_accepted_once_with_the_minting_identity() -> None:
    tokens = SingleUseTokens(60, Clock())
    first, second = tokens.mint("key-a"), tokens.mint("key-b")
    assert first != second and len(tokens) == 2
    assert tokens.consume(second) == "key-b"
    assert tokens.consume(second) is None
    assert tokens.consume(first) == "key-a"
    assert tokens.consume("never-minted") is None and len(tokens) == 0


def test_a_token_expires_after_its_ttl_and_is_forgotten() -> None:
    clock = Clock()
    tokens = SingleUseTokens(60, clock)
    old = tokens.mint("key")
    clock.now += 30
    young = tokens.mint("key")
    clock.now += 30  # old is exactly 60 s old: expired
    assert tokens.consume(old) is None
    assert len(tokens) == 1
    assert tokens.consume(young) == "key"
