"""``bench/bench_balancer.py``: what a session's figures mean (RTF, "real time").

The benchmark asserts nothing itself, so these tests pin its per-session arithmetic: a session
is real time when, played from its first chunk on, every chunk has arrived by the time it is due.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
bench_balancer = pytest.importorskip("bench_balancer")


def session(arrivals: list[float], seconds: list[float], code: int = 1000) -> object:
    return bench_balancer.Session(arrivals, seconds, code)


def test_a_session_that_keeps_ahead_of_playback_is_real_time() -> None:
    # Played from 0.1 s: the second chunk is due at 0.35 s, the third at 0.6 s.
    seen = session([0.1, 0.35, 0.5], [0.25, 0.25, 0.25])
    assert seen.real_time
    assert seen.completed
    assert seen.audio_s == pytest.approx(0.75)
    assert seen.rtf == pytest.approx(0.5 / 0.75)


def test_a_chunk_after_its_due_time_is_a_stall() -> None:
    assert not session([0.1, 0.4, 0.45], [0.25, 0.25, 0.25]).real_time


def test_only_a_normal_close_with_audio_completes() -> None:
    assert not session([0.1], [0.25], code=1011).completed
    assert not session([], [], code=1000).completed
