"""The batched decode step in fixed shapes, replayed as one CUDA graph per (batch, span) bucket.

Why: a decode step of the XTTS GPT is some 400 small kernels (30 layers of norms, matmuls,
attention). Launched one by one from Python, a step costs milliseconds of launch overhead however
little the GPU has to compute: the reference spends 12.3 ms per code on an H100 where reading the
weights takes about 0.2 ms (``shared/spec/xtts-reference.md`` §3.4). A CUDA graph replays the whole
step with one launch. A graph replays fixed kernels on fixed addresses, so the step here runs on
static buffers in a few fixed shapes:

- **batch buckets** (powers of two up to ``max_streams``): a step runs pool rows ``0 .. B-1`` for
  the smallest bucket ``B`` above the highest decoding row. The decoder hands out the lowest free
  row, so busy rows stay packed at the bottom. Rows in that range that are not decoding this step
  (free, or still prefilling) are fed a dummy code whose key and value go to the pool's *scratch*
  position, its last one, which no stream ever reaches: their real cache is never touched.
- **span buckets** (multiples of ``span_step``, up to the pool length): attention reads positions
  ``0 .. S-1`` for the smallest bucket above the furthest stream. The mask is built inside the step
  from the positions, so each row still sees only its own positions.
- the step's inputs go to the device in one copy from one host buffer; the outputs are copied into
  fixed buffers inside the step and the decoding rows gathered from them after it.

On CUDA each bucket is captured once (all of them up front with :meth:`DecodeGraphs.capture_all`,
else at first use); elsewhere the same fixed-shape step runs eagerly, which is how the CPU tests
prove it equals the dynamic step. No step reads anything back to the host: the decoder's one sync
per step is reading the drawn codes.

What it does not do: prefill (its chunks vary in length and run eagerly), sampling, or choosing
which rows decode (:class:`~xtts_core.batch.BatchDecoder` does).
"""

from __future__ import annotations

import bisect
import logging
import time

from xtts_core._extras import require_inference

require_inference("xtts_core.decode_graphs")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.errors import ParameterError  # noqa: E402
from xtts_core.kv_cache import KVCache, Scattered  # noqa: E402
from xtts_core.model.gpt import GPT  # noqa: E402
from xtts_core.steps import decode_one_token  # noqa: E402

__all__ = ["DecodeGraphs", "batch_buckets", "span_buckets"]

logger = logging.getLogger(__name__)

#: Rows of the input buffer: cache row, write position, code and audio position of every row of
#: the bucket, then which of those rows to gather the outputs of.
_ROW, _POSITION, _CODE, _AUDIO, _GATHER = range(5)


def batch_buckets(max_streams: int) -> list[int]:
    """Batch sizes a step runs at: powers of two below ``max_streams``, then ``max_streams``."""
    sizes = []
    size = 1
    while size < max_streams:
        sizes.append(size)
        size *= 2
    return [*sizes, max_streams]


def span_buckets(length: int, step: int) -> list[int]:
    """Positions attention reads: multiples of ``step`` below ``length``, then ``length``."""
    return [*range(step, length, step), length]


class DecodeGraphs:
    """Fixed-shape batched decode steps over ``pool`` for ``model`` (see the module doc).

    ``pool`` must hold one position more than any stream uses: its last position is the scratch
    the dummy rows write to. ``capture`` replays CUDA graphs (default: when the pool is on CUDA);
    without it the same steps run eagerly.
    """

    def __init__(
        self, model: GPT, pool: KVCache, span_step: int = 128, capture: bool | None = None
    ) -> None:
        if span_step < 1:
            raise ParameterError(f"span_step must be at least 1, got {span_step}")
        device = pool.k.device
        self.capture = device.type == "cuda" if capture is None else capture
        if self.capture and device.type != "cuda":
            raise ParameterError("CUDA graphs need the model on a CUDA device")
        self.model = model
        self.pool = pool
        self.scratch = pool.length - 1
        self.batches = batch_buckets(pool.k.shape[1])
        self.spans = span_buckets(pool.length, span_step)
        most = self.batches[-1]
        # Inputs: one pinned host buffer, one device copy of it; outputs: one buffer per bucket.
        self._host = torch.empty(5, most, dtype=torch.long, pin_memory=self.capture)
        self._inputs = torch.empty(5, most, dtype=torch.long, device=device)
        width, codes = model.cfg.width, model.cfg.num_audio_tokens
        dtype = model.mel_head.weight.dtype
        self._latents = {b: torch.empty(b, width, dtype=dtype, device=device) for b in self.batches}
        self._logits = {b: torch.empty(b, codes, dtype=dtype, device=device) for b in self.batches}
        self._copied: torch.cuda.Event | None = None  # the last copy out of the host buffer
        self._graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}
        self._memory = torch.cuda.graph_pool_handle() if self.capture else None

    @property
    def captured(self) -> int:
        """CUDA graphs captured so far."""
        return len(self._graphs)

    def bucket(self, rows: list[int], positions: list[int]) -> tuple[int, int]:
        """The (batch, span) bucket a step over these rows and write positions runs in."""
        batch = self.batches[bisect.bisect_left(self.batches, max(rows) + 1)]
        span = self.spans[bisect.bisect_left(self.spans, max(positions) + 1)]
        return batch, span

    @torch.inference_mode()
    def run(
        self, rows: list[int], positions: list[int], codes: Tensor, audio_positions: list[int]
    ) -> tuple[Tensor, Tensor]:
        """Feed ``codes[i]`` at audio position ``audio_positions[i]`` to cache row ``rows[i]`` at
        sequence position ``positions[i]``; returns their (n, C) latents and (n, V) logits, in the
        order given. ``codes`` (n,) stay on the device (the step never waits for them to reach
        the host). Every position must be below the scratch one."""
        if max(positions) >= self.scratch:
            raise ParameterError(f"position {max(positions)} reaches the scratch position")
        batch, span = self.bucket(rows, positions)
        if self._copied is not None:  # the previous step's copy may still read the host buffer
            self._copied.synchronize()
        host = self._host[:, :batch]
        host[_ROW] = torch.arange(batch)
        host[_POSITION] = self.scratch
        host[_CODE] = 0
        host[_AUDIO] = 0
        at = torch.tensor(rows)
        host[_POSITION, at] = torch.tensor(positions)
        host[_AUDIO, at] = torch.tensor(audio_positions)
        host[_GATHER, : len(rows)] = at
        self._inputs[:, :batch].copy_(host, non_blocking=True)
        if self.capture:
            self._copied = torch.cuda.Event()  # type: ignore[no-untyped-call]
            self._copied.record()
        wanted = self._inputs[_GATHER, : len(rows)]
        self._inputs[_CODE].index_copy_(0, wanted, codes.to(self._inputs.dtype))
        self._replay(batch, span)
        return self._latents[batch][wanted], self._logits[batch][wanted]

    @torch.inference_mode()
    def capture_all(self) -> int:
        """Capture every bucket now (a worker does this before serving, so no request pays for
        a capture) and check each replay against the same step run eagerly; returns how many
        graphs there are. Only dummy rows run: nothing but the scratch position is written.

        Raises ``RuntimeError`` when a replay differs from its eager step: a graph that does
        not do what the step does must never serve.
        """
        if not self.capture:
            return 0
        started = time.perf_counter()
        most = self.batches[-1]
        self._inputs[_ROW].copy_(torch.arange(most))
        self._inputs[_POSITION].fill_(self.scratch)
        self._inputs[_CODE].zero_()
        self._inputs[_AUDIO].zero_()
        for batch in self.batches:
            for span in self.spans:
                self._check(batch, span)
        torch.cuda.synchronize()
        logger.info(
            "captured %d decode graphs (%d batch x %d span buckets) in %.2f s",
            len(self._graphs), len(self.batches), len(self.spans), time.perf_counter() - started,
        )  # fmt: skip
        return len(self._graphs)

    def _check(self, batch: int, span: int) -> None:
        """Replay (capturing first) one bucket, then run its step eagerly on the same inputs."""
        self._replay(batch, span)
        replayed = torch.cat([self._latents[batch], self._logits[batch]], dim=1)
        self._step(batch, span)
        eager = torch.cat([self._latents[batch], self._logits[batch]], dim=1)
        if not torch.allclose(replayed, eager, rtol=1e-3, atol=1e-3):
            error = (replayed - eager).abs().max().item()
            raise RuntimeError(
                f"the CUDA graph of batch {batch}, span {span} differs from its eager step by "
                f"up to {error:.3g}"
            )

    def _replay(self, batch: int, span: int) -> None:
        if not self.capture:
            self._step(batch, span)
            return
        graph = self._graphs.get((batch, span))
        if graph is None:
            graph = self._graphs[batch, span] = self._record(batch, span)
        graph.replay()

    def _record(self, batch: int, span: int) -> torch.cuda.CUDAGraph:
        """Capture one bucket. The warm-up runs execute with the current inputs: a step writes
        the keys and values of its inputs, so running it again is harmless."""
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # let cuBLAS and the allocator settle before capture
                self._step(batch, span)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._memory, capture_error_mode="thread_local"):
            self._step(batch, span)
        return graph

    def _step(self, batch: int, span: int) -> None:
        """The step itself, on static buffers only: what a graph records."""
        inputs = self._inputs[:, :batch]
        place = Scattered.masked(inputs[_ROW], slice(0, batch), inputs[_POSITION], span)
        latents, logits = decode_one_token(
            self.model, inputs[_CODE], inputs[_AUDIO], self.pool, place
        )
        self._latents[batch].copy_(latents)
        self._logits[batch].copy_(logits)
