"""``bench/bench_core.py``: its instruments measure what the stream runs, or stop the benchmark.

The "vocoder s" column is the time inside the instrumented vocoder method during a stream; if
the stream never calls that method the column reads zero and looks like a result. These tests
check that the method the benchmark instruments is the one our stream calls, and that an
instrument never hit is an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from bench_scripts import bench_script


@pytest.fixture(scope="module")
def bench(one_torch_thread: None) -> Iterator[ModuleType]:
    """``bench/bench_core.py`` as a module."""
    with bench_script("bench_core") as module:
        yield module


def test_an_instrument_never_hit_stops_the_benchmark(bench: ModuleType) -> None:
    meter = bench.Meter()
    with pytest.raises(RuntimeError, match="the vocoder was instrumented but never called"):
        meter.require("the vocoder")
    assert meter.wrap(lambda x: x + 1)(1) == 2
    meter.require("the vocoder")  # one call: no error
    assert meter.calls == 1


def test_our_rows_time_the_vocoder_the_stream_runs(bench: ModuleType, tiny_dir: Path) -> None:
    from xtts_core.chunking import StreamOptions
    from xtts_core.stream import IncrementalVocoder

    systems, _ = bench.our_systems(tiny_dir, "fp32", 6, {"ours": StreamOptions()})
    (row,) = bench.measure(systems, 6, 1)
    assert row.vocoder_s > 0
    assert 0 < row.vocoder_s < row.total_s
    # an instrument on a method the stream does not call stops the run instead of reading 0
    idle = dataclasses.replace(systems[0], vocoder=(IncrementalVocoder, "pull"))
    with pytest.raises(RuntimeError, match=r"ours: the vocoder IncrementalVocoder\.pull was"):
        bench.measure([idle], 6, 1)
