"""Capacity: the KV pool's bytes from the config, the refusal of a pool that does not fit, and the
real-time batch estimated from step times."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

torch = pytest.importorskip("torch")

from xtts_core import capacity, kv_cache  # noqa: E402
from xtts_core.batch import BatchDecoder  # noqa: E402
from xtts_core.capacity import RealtimeCapacity  # noqa: E402
from xtts_core.errors import ParameterError  # noqa: E402
from xtts_core.generate import SamplingParams  # noqa: E402
from xtts_core.kv_cache import (  # noqa: E402
    KVCache,
    check_kv_pool,
    free_memory,
    kv_pool_bytes,
    slot_positions,
)
from xtts_core.scheduler import BatchScheduler  # noqa: E402

if TYPE_CHECKING:
    from xtts_core.engine import XttsEngine

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUDGET_S = 1024 / 22050  # one code of audio
CPU = torch.device("cpu")


@pytest.mark.parametrize(("streams", "positions"), [(1, None), (3, None), (5, 77)])
def test_pool_bytes_equal_the_allocated_pool(
    engine: XttsEngine, streams: int, positions: int | None
) -> None:
    gpt = engine.model.gpt
    decoder = BatchDecoder(gpt, streams, max_positions=positions)
    allocated = decoder.pool.k.nbytes + decoder.pool.v.nbytes
    assert kv_pool_bytes(gpt.cfg, streams, torch.float32, positions) == allocated
    assert decoder.max_positions == (positions or slot_positions(gpt.cfg))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_pool_bytes_follow_the_dtype(engine: XttsEngine, dtype: torch.dtype) -> None:
    cfg = engine.model.gpt.cfg
    head_dim = cfg.width // cfg.heads
    pool = KVCache(cfg.layers, 2, cfg.heads, 50, head_dim, dtype, "cpu")
    assert kv_pool_bytes(cfg, 2, dtype, 50) == pool.k.nbytes + pool.v.nbytes


def test_a_pool_over_the_budget_is_refused_before_allocation(engine: XttsEngine) -> None:
    gpt = engine.model.gpt
    per_stream = kv_pool_bytes(gpt.cfg, 1, torch.float32)
    with pytest.raises(ParameterError) as info:
        BatchDecoder(gpt, 4, memory_budget=int(2.5 * per_stream))
    message = str(info.value)
    assert "the KV pool of 4 streams needs" in message
    assert f"2 x {gpt.cfg.layers} layers x {gpt.cfg.heads} heads" in message
    assert "the budget is" in message
    assert message.endswith("at most 2 streams fit")
    assert "\n" not in message
    BatchDecoder(gpt, 2, memory_budget=int(2.5 * per_stream))  # two fit


def test_a_pool_over_the_free_memory_is_refused(
    engine: XttsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = engine.model.gpt.cfg
    per_stream = kv_pool_bytes(cfg, 1, torch.float32)
    monkeypatch.setattr(kv_cache, "free_memory", lambda device: 3 * per_stream)
    with pytest.raises(ParameterError, match=r"cpu has .* GiB free: at most 3 streams fit"):
        check_kv_pool(cfg, 8, torch.float32, CPU)
    # a budget above the free memory does not lift the device's limit
    with pytest.raises(ParameterError, match="at most 3 streams fit"):
        check_kv_pool(cfg, 8, torch.float32, CPU, budget_bytes=100 * per_stream)
    assert check_kv_pool(cfg, 3, torch.float32, CPU) == 3 * per_stream


def test_free_memory_of_the_host() -> None:
    meminfo = Path("/proc/meminfo").read_text()
    found = re.search(r"MemAvailable:\s+(\d+) kB", meminfo)
    assert found is not None
    available = int(found.group(1)) * 1024
    assert abs(free_memory(CPU) - available) < available // 4  # the host's memory moves


def test_capacity_from_one_batch_size_is_pessimistic() -> None:
    cap = RealtimeCapacity(max_streams=16, budget_s=BUDGET_S, safety=0.8)
    assert cap.estimate() is None
    cap.record(1, 0.010)
    est = cap.estimate()
    assert est is not None
    # 37.1 ms allowed; as if nothing were shared, 3 streams of 10 ms fit
    assert (est.streams, est.step_s) == (3, pytest.approx(0.010))


def test_capacity_from_a_line_through_the_batch_sizes() -> None:
    cap = RealtimeCapacity(max_streams=64, budget_s=BUDGET_S, safety=0.8)
    for _ in range(5):
        cap.record(1, 0.010)
        cap.record(4, 0.016)  # t(B) = 8 ms + 2 ms * B
    est = cap.estimate()
    assert est is not None
    assert est.streams == 14  # floor((37.15 - 8) / 2)
    assert est.step_s == pytest.approx(0.016)  # the most recent batch size
    cap.record(8, 0.024)
    assert cap.estimate() == capacity.StepEstimate(14, pytest.approx(0.024))


def test_capacity_bounds() -> None:
    flat = RealtimeCapacity(max_streams=6, budget_s=BUDGET_S)
    flat.record(1, 0.005)
    flat.record(3, 0.004)  # noise: bigger looks faster; never promise more than the slots
    assert flat.estimate() == capacity.StepEstimate(6, pytest.approx(0.004))
    slow = RealtimeCapacity(max_streams=6, budget_s=BUDGET_S)
    slow.record(1, 0.5)  # slower than real time even alone: still takes one stream
    assert slow.estimate() == capacity.StepEstimate(1, pytest.approx(0.5))
    with pytest.raises(ParameterError, match="safety"):
        RealtimeCapacity(max_streams=1, budget_s=BUDGET_S, safety=0)


def test_the_rolling_window_forgets_old_steps() -> None:
    cap = RealtimeCapacity(max_streams=64, budget_s=BUDGET_S, safety=1.0, window=4)
    for _ in range(4):
        cap.record(2, 0.100)  # a slow burst (e.g. another process on the device)
    assert cap.estimate() == capacity.StepEstimate(1, pytest.approx(0.100))
    for _ in range(4):
        cap.record(2, 0.002)
    assert cap.estimate() == capacity.StepEstimate(46, pytest.approx(0.002))


def test_the_scheduler_times_its_steps(engine_fast_vocoder: XttsEngine) -> None:
    engine = engine_fast_vocoder
    voice = engine.speaker("Random Speaker")
    params = SamplingParams(seed=1, min_new_codes=6, max_new_codes=6)
    with BatchScheduler(engine, max_streams=2) as scheduler:
        assert scheduler.capacity.estimate() is None
        jobs = [scheduler.submit("Hello.", "en", voice, params) for _ in range(2)]
        for job in jobs:
            list(job)
        est = scheduler.capacity.estimate()
    assert est is not None
    assert 1 <= est.streams <= 2
    assert 0 < est.step_s < 10
