"""Continuous batching of code decoding: the next-code step of many sentences in one forward.

What it does: a :class:`BatchDecoder` owns one KV pool with a row per stream slot. Sentences join
(:meth:`~BatchDecoder.add`) and leave (they finish, or :meth:`~BatchDecoder.cancel`) between steps.
Each :meth:`~BatchDecoder.step` first samples one code for every decoding stream, then runs ONE
batched forward that feeds all those codes, each stream at its own position and masked so it never
sees another stream's keys, and finally spends a bounded budget of prompt positions on prefilling
streams that joined (chunked prefill: a long new prompt never stalls the others for a whole
prompt's worth of compute). Reading the weights once per step for every stream, instead of once per
stream, is where the throughput comes from.

Sampling stays per stream, with its own parameters, history and RNG: a stream's codes do not
depend on who else is in the batch, and a seeded sentence gives the same codes batched as alone
(latents equal to float rounding). A decoder of one slot is how a single sentence is decoded
(:class:`~xtts_core.generate.CodeStream`), so the CLI, the benchmarks and the server run this one
decode path. A stream may also be teacher-forced: fed given codes instead of sampled ones, each
step still reporting the logits the code would have been drawn from.

What it does not do: vocoding (each stream's latents go to its own
:class:`~xtts_core.stream.IncrementalVocoder`), text handling, or threading: one thread drives
``step()``; ``add`` and ``cancel`` are called from that same thread between steps.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Sequence

from xtts_core._extras import require_inference

require_inference("xtts_core.batch")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from xtts_core.batch_stream import BatchedStream, StepOutput  # noqa: E402
from xtts_core.decode_graphs import DecodeGraphs  # noqa: E402
from xtts_core.errors import CapacityError, ParameterError  # noqa: E402
from xtts_core.kv_cache import (  # noqa: E402
    Contiguous,
    KVCache,
    PrefixCache,
    Scattered,
    check_kv_pool,
    slot_positions,
)
from xtts_core.model.gpt import GPT  # noqa: E402
from xtts_core.readback import ReadBack  # noqa: E402
from xtts_core.sampling import SamplingParams, code_limit, process_logits, sample  # noqa: E402
from xtts_core.steps import decode_one_token, prefill, prompt_embeddings  # noqa: E402

__all__ = ["BatchDecoder", "BatchedStream", "StepOutput"]

logger = logging.getLogger(__name__)


class BatchDecoder:
    """Decode up to ``max_streams`` sentences together over one GPT (see the module doc).

    ``prefill_chunk`` bounds the prompt positions prefilled per step; ``max_positions`` the
    sequence length of every slot (default: the longest prompt the model takes plus its code
    limit). The KV pool is ``layers x max_streams x heads x max_positions x head_dim`` keys and as
    many values, in the model's dtype, allocated once, after checking that it fits the device's
    free memory and ``memory_budget`` bytes (:func:`~xtts_core.kv_cache.check_kv_pool`).

    ``prefix_cache`` (:class:`~xtts_core.kv_cache.PrefixCache`) holds the keys and values of
    the voices' conditioning latents: a sentence of a voice found there copies them into its row
    and prefills only its text and start code; one not found stores them once prefilled.

    ``decode_graphs`` runs the decode steps in fixed shapes (:class:`~xtts_core.decode_graphs.
    DecodeGraphs`), replayed as CUDA graphs on a CUDA device, attention reading spans of
    ``span_step`` positions; the pool then holds one scratch position more per slot. A stream
    takes the lowest free row, which keeps busy rows packed for those fixed batch sizes.
    """

    def __init__(
        self, model: GPT, max_streams: int, prefill_chunk: int = 128,
        max_positions: int | None = None, memory_budget: int | None = None,
        decode_graphs: bool = False, span_step: int = 128, prefix_cache: PrefixCache | None = None,
    ) -> None:  # fmt: skip
        cfg = model.cfg
        if max_streams < 1 or prefill_chunk < 1:
            raise ParameterError("max_streams and prefill_chunk must be at least 1")
        self.model = model
        self.prefill_chunk = prefill_chunk
        weight = model.mel_head.weight
        self.max_positions = max_positions or slot_positions(cfg)
        length = self.max_positions + (1 if decode_graphs else 0)  # the graphs' scratch position
        check_kv_pool(cfg, max_streams, weight.dtype, weight.device, memory_budget, length)
        # Several rows, or the fixed-shape steps, read past a shorter row's end: a zeroed pool.
        zeroed = max_streams > 1 or decode_graphs
        self.pool = KVCache.for_model(cfg, max_streams, length, weight.dtype, weight.device, zeroed)
        self.graphs = DecodeGraphs(model, self.pool, span_step) if decode_graphs else None
        self.prefix_cache = prefix_cache
        self._misses: dict[int, tuple[bytes, int]] = {}  # stream id -> (prefix key, positions)
        self._free_rows = list(range(max_streams))  # a heap: the lowest free row goes first
        self._prefilling: deque[BatchedStream] = deque()
        self._decoding: list[BatchedStream] = []
        self._ids = itertools.count()

    @property
    def free_slots(self) -> int:
        """Streams that can still join."""
        return len(self._free_rows)

    @property
    def active(self) -> int:
        """Streams prefilling or decoding."""
        return len(self._prefilling) + len(self._decoding)

    @torch.inference_mode()
    def add(
        self, cond_latents: Tensor, text_ids: list[int], params: SamplingParams,
        forced: Sequence[int] | None = None,
    ) -> BatchedStream:  # fmt: skip
        """Queue a sentence (voice latents (1, L, C), token ids); it prefills over the next steps.

        ``forced`` teacher-forces it: it is fed these codes (1 up to its code limit) in place of
        sampled ones, so it takes exactly that many steps (see :class:`BatchedStream`).
        """
        if not self._free_rows:
            raise CapacityError(f"all {self.pool.batch} stream slots are in use")
        ids = torch.tensor([text_ids], dtype=torch.long)
        prompt = prompt_embeddings(self.model, cond_latents, ids)  # (1, P, C)
        limit = code_limit(params, self.model.cfg)
        if forced is not None and not 0 < len(forced) <= limit:
            raise ParameterError(f"teacher forcing takes 1 to {limit} codes, got {len(forced)}")
        max_new = limit if forced is None else len(forced)
        if prompt.shape[1] + max_new - 1 > self.max_positions:
            raise ParameterError(
                f"a prompt of {prompt.shape[1]} positions plus {max_new} codes does not fit the "
                f"{self.max_positions} positions of a decoder slot"
            )
        row, ident = heapq.heappop(self._free_rows), next(self._ids)
        cached = 0
        if self.prefix_cache is not None:
            key = PrefixCache.key(cond_latents)
            hit = self.prefix_cache.get(key)
            if hit is None:
                self._misses[ident] = (key, cond_latents.shape[1])
            else:
                self.pool.write_prefix(row, *hit)
                cached = cond_latents.shape[1]
        stream = BatchedStream(ident, row, prompt, params, self.model.cfg, forced, cached)
        self._prefilling.append(stream)
        return stream

    def capture_graphs(self) -> bool:
        """Capture the fixed-shape decode steps as CUDA graphs now, if they are on and on CUDA
        (see :meth:`~xtts_core.decode_graphs.DecodeGraphs.capture_all`); True when steps replay
        graphs from here on. A capture that fails or does not match its eager step turns the
        graphs off with one warning: the decoder then runs its dynamic steps, slower but right.
        """
        if self.graphs is None or not self.graphs.capture:
            return False
        try:
            self.graphs.capture_all()
        except RuntimeError as exc:
            logger.warning("CUDA graphs are off, decode steps run eagerly: %s", exc)
            self.graphs = None
            return False
        return True

    def cancel(self, stream: BatchedStream) -> None:
        """Drop a stream now (barge-in, client gone): its slot is free for the next ``add``."""
        if stream.finished:
            return
        if stream in self._prefilling:
            self._prefilling.remove(stream)
        else:
            self._decoding.remove(stream)
        self._release(stream)

    @torch.inference_mode()
    def step(self) -> list[StepOutput]:
        """Draw one code per decoding stream, feed them in one forward, then prefill a chunk.

        The forward is queued before the host reads the drawn codes back, so nothing waits for
        the device before it is queued, and on a GPU the host's bookkeeping (which stream
        stopped, handing out latents) runs while the forward computes. A stream that drew its
        stop code is therefore fed like the others and its result dropped; one that reached its
        code limit is not fed.
        """
        drawn = self._draw()
        outputs: list[StepOutput] = []
        if drawn:
            values = ReadBack(torch.cat([code for _, code in drawn]))
            feeding = [(s, code) for s, code in drawn if len(s.codes) + 1 < s.max_new]
            fed = self._feed(feeding) if feeding else {}
            stop = self.model.cfg.stop_audio_token
            for (stream, _), value in zip(drawn, values.tolist(), strict=True):
                outputs.append(stream.accept(value, stop))
                if outputs[-1].finished:
                    self._decoding.remove(stream)
                    self._release(stream)
                else:
                    stream.fed(*fed[stream.id])
        self._prefill()
        return outputs

    def _draw(self) -> list[tuple[BatchedStream, Tensor]]:
        """Each decoding stream with its next code (1,), still on the device, in decoding order.

        The logits of streams that sample alike are processed in one call per group (the
        top-k, sort and softmax over 8194 codes dominate a step's sampling). Seeded streams then
        draw one by one, each with its own RNG; the rest of the group draws in one call (from
        torch's global RNG, or greedily), which on a GPU is one kernel launch instead of one
        per stream. A teacher-forced stream takes its next given code.
        """
        stop = self.model.cfg.stop_audio_token
        groups: dict[tuple[SamplingParams, bool], list[BatchedStream]] = {}
        codes: dict[int, Tensor] = {}
        for stream in self._decoding:
            forced = stream.forced_code()
            if forced is not None:
                codes[stream.id] = forced
            else:
                groups.setdefault(stream.sampling_key(), []).append(stream)
        for (params, _), streams in groups.items():
            streams.sort(key=lambda s: s.own_rng)  # the shared draw reads the first rows: a view
            pending = [s.pending() for s in streams]
            logits = torch.cat([p[0] for p in pending])
            seen = torch.cat([p[1] for p in pending])
            scores = process_logits(logits, seen, len(streams[0].codes), params, stop)
            shared = sum(not s.own_rng for s in streams)
            together = sample(scores[:shared], params, None) if shared else None
            for i, stream in enumerate(streams):
                if together is not None and i < shared:
                    codes[stream.id] = together[i : i + 1]
                else:
                    codes[stream.id] = stream.draw(scores[i : i + 1])
        return [(stream, codes[stream.id]) for stream in self._decoding]

    def _feed(
        self, feeding: list[tuple[BatchedStream, Tensor]]
    ) -> dict[int, tuple[Tensor, Tensor]]:
        """One forward of the codes just drawn (not yet accepted); each stream's (1, C) latents
        and (1, V) logits by stream id."""
        feeding = sorted(feeding, key=lambda pair: pair[0].row)  # consecutive rows read as a view
        streams = [stream for stream, _ in feeding]
        codes = torch.cat([code for _, code in feeding])  # (B,), on the device
        rows = [s.row for s in streams]
        positions = [s.position + 1 for s in streams]  # where each new code goes
        audio_pos = [len(s.codes) + 1 for s in streams]
        if self.graphs is not None:
            latents, logits = self.graphs.run(rows, positions, codes, audio_pos)
        else:
            device = self.pool.k.device
            place = Scattered.for_step(rows, positions, device)
            at = torch.tensor(audio_pos, device=device)
            latents, logits = decode_one_token(self.model, codes, at, self.pool, place)
        return {s.id: (latents[i : i + 1], logits[i : i + 1]) for i, s in enumerate(streams)}

    def _prefill(self) -> None:
        budget = self.prefill_chunk
        while budget and self._prefilling:
            stream = self._prefilling[0]
            chunk, start = stream.prompt_chunk(budget)
            place = Contiguous(slice(stream.row, stream.row + 1), start)
            latents, logits = prefill(self.model, chunk, self.pool, place)
            stream.prefilled(chunk.shape[1], latents, logits)
            budget -= chunk.shape[1]
            if not stream.prefilling:
                self._decoding.append(self._prefilling.popleft())
                self._keep_prefix(stream)

    def _keep_prefix(self, stream: BatchedStream) -> None:
        """A prefilled stream whose voice missed the prefix cache gives it its latents' K/V."""
        miss = self._misses.pop(stream.id, None)
        if miss is not None and self.prefix_cache is not None:
            key, positions = miss
            self.prefix_cache.put(key, *self.pool.read_prefix(stream.row, positions))

    def _release(self, stream: BatchedStream) -> None:
        self._misses.pop(stream.id, None)
        stream.close()
        heapq.heappush(self._free_rows, stream.row)
