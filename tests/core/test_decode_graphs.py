"""The fixed-shape decode step behind CUDA graphs, checked where CI runs: on CPU, eagerly.

A CUDA graph replays exactly the kernels of the step it recorded, on the same buffers, so what
can go wrong is the fixed-shape step itself: padding rows that write where they should not,
masks that let a row see too far, outputs gathered from the wrong rows, or anything that reads a
value back to the host (which capture forbids). Streams decoded through it equal their solo runs
in ``test_batch.py``; this module checks the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

torch = pytest.importorskip("torch")

from xtts_core.batch import BatchDecoder  # noqa: E402
from xtts_core.decode_graphs import DecodeGraphs, batch_buckets, span_buckets  # noqa: E402
from xtts_core.errors import ParameterError  # noqa: E402
from xtts_core.generate import SamplingParams  # noqa: E402
from xtts_core.kv_cache import KVCache, Scattered  # noqa: E402

if TYPE_CHECKING:
    from xtts_core.engine import XttsEngine
    from xtts_core.model.gpt import GPT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LENGTH = 41  # positions per slot, the last one the scratch


def test_buckets_cover_every_size_with_powers_of_two_and_the_maximum() -> None:
    assert batch_buckets(1) == [1]
    assert batch_buckets(8) == [1, 2, 4, 8]
    assert batch_buckets(12) == [1, 2, 4, 8, 12]
    assert span_buckets(41, 16) == [16, 32, 41]
    assert span_buckets(32, 16) == [16, 32]


def filled_pool(gpt: GPT, rows: int) -> KVCache:
    """A pool whose every position holds its own random value, so any write shows."""
    cfg = gpt.cfg
    pool = KVCache(
        cfg.layers, rows, cfg.heads, LENGTH, cfg.width // cfg.heads, torch.float32, "cpu"
    )
    generator = torch.Generator().manual_seed(0)
    pool.k.copy_(torch.randn(pool.k.shape, generator=generator))
    pool.v.copy_(torch.randn(pool.v.shape, generator=generator))
    return pool


def test_a_step_writes_only_its_rows_positions_and_the_scratch(engine: XttsEngine) -> None:
    gpt = engine.model.gpt
    pool = filled_pool(gpt, rows=5)
    before_k, before_v = pool.k.clone(), pool.v.clone()
    graphs = DecodeGraphs(gpt, pool, span_step=16)
    # rows 1 and 3 decode: the step runs the 4-row bucket, rows 0 and 2 as padding; row 4 is
    # outside it. Positions 20 and 7 fall in the 32-position span bucket.
    assert graphs.bucket([1, 3], [20, 7]) == (4, 32)
    graphs.run([1, 3], [20, 7], torch.tensor([5, 9]), [3, 1])
    written = torch.zeros(5, LENGTH, dtype=torch.bool)
    written[1, 20] = written[3, 7] = True
    written[:4, graphs.scratch] = True  # every row of the bucket that did not decode
    written[1, graphs.scratch] = written[3, graphs.scratch] = False
    for after, before in ((pool.k, before_k), (pool.v, before_v)):
        changed = (after != before).any(dim=-1).any(dim=2).any(dim=0)  # (rows, positions)
        assert torch.equal(changed, written)


def test_a_step_equals_the_dynamic_step_on_the_same_cache(engine: XttsEngine) -> None:
    gpt = engine.model.gpt
    pool = filled_pool(gpt, rows=4)
    twin = KVCache(gpt.cfg.layers, 4, gpt.cfg.heads, LENGTH, pool.k.shape[-1], torch.float32, "cpu")
    twin.k.copy_(pool.k)
    twin.v.copy_(pool.v)
    rows, positions, codes, audio = [0, 2, 3], [33, 4, 17], [11, 12, 13], [2, 1, 6]
    latents, logits = DecodeGraphs(gpt, pool, span_step=16).run(
        rows, positions, torch.tensor(codes), audio
    )
    with torch.inference_mode():
        emb = gpt.audio_embedding(torch.tensor(codes)[:, None], torch.tensor(audio))
        want_latents, want_logits = gpt(emb, twin, Scattered.for_step(rows, positions, emb.device))
    torch.testing.assert_close(latents, want_latents, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-5)
    for layer in range(gpt.cfg.layers):  # and the keys it cached are the dynamic step's
        for row, position in zip(rows, positions, strict=True):
            torch.testing.assert_close(
                pool.k[layer, row, :, position], twin.k[layer, row, :, position]
            )


def test_the_scratch_position_is_never_a_streams(engine: XttsEngine) -> None:
    graphs = DecodeGraphs(engine.model.gpt, filled_pool(engine.model.gpt, rows=2))
    with pytest.raises(ParameterError, match="scratch"):
        graphs.run([0], [graphs.scratch], torch.tensor([1]), [1])


def test_graphs_need_cuda(engine: XttsEngine) -> None:
    with pytest.raises(ParameterError, match="CUDA"):
        DecodeGraphs(engine.model.gpt, filled_pool(engine.model.gpt, rows=1), capture=True)
    assert DecodeGraphs(engine.model.gpt, filled_pool(engine.model.gpt, rows=1)).capture_all() == 0


def test_the_step_traces_as_one_graph_with_no_host_reads(engine: XttsEngine) -> None:
    """What stream capture forbids (``.item()``, ``.tolist()``, branching on a tensor's value,
    shapes that depend on data) is a graph break to TorchDynamo: ``fullgraph=True`` raises on
    the first one. The eager backend traces without compiling anything."""
    graphs = DecodeGraphs(engine.model.gpt, filled_pool(engine.model.gpt, rows=4), span_step=16)
    graphs.run([0, 1], [3, 30], torch.tensor([1, 2]), [1, 1])  # inputs in place for the traced step
    latents = graphs._latents[2].clone()
    torch._dynamo.reset()
    with torch.inference_mode():
        torch.compile(graphs._step, fullgraph=True, backend="eager")(2, 32)
    torch.testing.assert_close(graphs._latents[2], latents)


def test_a_failed_capture_leaves_the_decoder_on_its_dynamic_steps(
    engine: XttsEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Capture only happens on CUDA; here its failure is injected, as a driver would raise it."""
    gpt = engine.model.gpt
    ids = engine.tokenizer.encode("Hello there.", "en")
    latent = engine.speaker("Random Speaker").gpt_cond_latent
    params = SamplingParams(seed=4, max_new_codes=10)
    solo = BatchDecoder(gpt, max_streams=1)
    decoder = BatchDecoder(gpt, max_streams=2, decode_graphs=True)
    assert decoder.capture_graphs() is False  # on CPU there is nothing to capture ...
    assert decoder.graphs is not None  # ... and the fixed-shape steps stay
    monkeypatch.setattr(decoder.graphs, "capture", True)

    def broken_capture() -> int:
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(decoder.graphs, "capture_all", broken_capture)
    assert decoder.capture_graphs() is False
    assert decoder.graphs is None
    assert "CUDA graphs are off" in caplog.text
    streams = [d.add(latent, ids, params) for d in (solo, decoder)]
    for d in (solo, decoder):
        while d.active:
            d.step()
    assert streams[0].codes == streams[1].codes
