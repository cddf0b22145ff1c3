"""The GPT's KV cache: its storage, where a forward writes in it, what attention reads, its size.

What it does: :class:`KVCache` preallocates the keys and values of every layer for a number of
stream rows (gpt-fast's static cache: no allocation inside the decode loop, fixed addresses that
CUDA graphs can replay). A forward says where its new positions go with a :class:`CachePlace`:
:class:`Contiguous` (a prefill chunk, or streams in lockstep) or :class:`Scattered` (one new
position per stream of a batched step, each stream at its own length). :meth:`KVCache.update`
writes the new keys and values there and returns what attention reads, with the mask that keeps
each row to its own positions: the attention layer never indexes the cache itself.
:class:`PrefixCache` keeps, per voice, the keys and values of the conditioning latents, which
come first in every prompt and carry no position embedding: under causal attention they are the
same for every sentence of that voice, so a sentence copies them into its row instead of
prefilling them again. :func:`check_kv_pool` sizes a pool before it is allocated.

The invariant a changer must keep: a row only ever reads positions it wrote, or, in a batched
step that reads past a shorter row's end, positions the mask hides (such a pool is created
zeroed, so a NaN of uninitialised memory cannot reach the masked softmax).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from xtts_core._extras import require_inference

require_inference("xtts_core.kv_cache")

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from xtts_core.config import GPTConfig  # noqa: E402
from xtts_core.errors import ParameterError  # noqa: E402

__all__ = [
    "CachePlace",
    "Contiguous",
    "KVCache",
    "PrefixCache",
    "Scattered",
    "check_kv_pool",
    "free_memory",
    "kv_pool_bytes",
    "slot_positions",
]

GIB = 1024**3


@dataclass(frozen=True)
class Contiguous:
    """New positions ``start, start+1, ...`` of the cache rows ``rows`` (a prefill or one stream)."""

    rows: slice
    start: int


@dataclass(frozen=True)
class Scattered:
    """One new position per stream of a batched decode step, each stream at its own length.

    ``rows`` (B,) are the streams' cache rows, ``positions`` (B,) where each writes its new key and
    value, ``span`` how many positions to read (the longest stream's length after this step) and
    ``mask`` (B, 1, 1, span) which of them each row may see: its own, never another stream's;
    None when every row sees the whole span (a single row). ``read_rows`` is ``rows`` as a slice
    when they are consecutive, so reading the cache is a view instead of a gather that copies
    every stream's keys and values at every layer. Built once per step and shared by every layer.
    """

    rows: Tensor
    read_rows: slice | Tensor
    positions: Tensor
    span: int
    mask: Tensor | None

    @classmethod
    def masked(
        cls, rows: Tensor, read_rows: slice | Tensor, positions: Tensor, span: int
    ) -> Scattered:
        """The place with each row's mask computed on the device from ``positions`` (B,): what a
        fixed-shape step does, since it cannot know the positions on the host."""
        seen = torch.arange(span, device=positions.device)[None, :] <= positions[:, None]
        return cls(rows, read_rows, positions, span, seen[:, None, None, :])

    @classmethod
    def for_step(cls, rows: list[int], positions: list[int], device: torch.device) -> Scattered:
        """The place of a step where stream ``i`` sits in cache row ``rows[i]`` at ``positions[i]``."""
        row_ids = torch.tensor(rows, dtype=torch.long, device=device)
        where = torch.tensor(positions, dtype=torch.long, device=device)
        consecutive = rows == list(range(rows[0], rows[0] + len(rows)))
        read_rows = slice(rows[0], rows[0] + len(rows)) if consecutive else row_ids
        span = max(positions) + 1
        if len(rows) == 1:  # the one row sees every position it reads
            return cls(row_ids, read_rows, where, span, None)
        return cls.masked(row_ids, read_rows, where, span)


CachePlace = Contiguous | Scattered


class KVCache(nn.Module):
    """Preallocated keys and values of every layer for ``batch`` rows of up to ``length`` steps.

    ``zeroed`` fills the storage with zeros first: a pool whose batched steps read past a shorter
    row's end needs it (see the module doc); a cache whose rows read only what they wrote does not.
    """

    def __init__(
        self, layers: int, batch: int, heads: int, length: int, head_dim: int, dtype: torch.dtype,
        device: torch.device | str, zeroed: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        shape = (layers, batch, heads, length, head_dim)
        make = torch.zeros if zeroed else torch.empty
        self.register_buffer("k", make(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", make(shape, dtype=dtype, device=device), persistent=False)
        self.k: Tensor
        self.v: Tensor

    @classmethod
    def for_model(
        cls, cfg: GPTConfig, batch: int, length: int, dtype: torch.dtype, device: torch.device,
        zeroed: bool = False,
    ) -> KVCache:  # fmt: skip
        """A cache shaped for a GPT of ``cfg``."""
        head_dim = cfg.width // cfg.heads
        return cls(cfg.layers, batch, cfg.heads, length, head_dim, dtype, device, zeroed)

    @property
    def length(self) -> int:
        """Steps each row can hold."""
        return int(self.k.shape[3])

    @property
    def batch(self) -> int:
        """Rows (streams) the cache holds."""
        return int(self.k.shape[1])

    def update(
        self, layer: int, place: CachePlace, k: Tensor, v: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Write the new keys and values ``k``, ``v`` (B, H, T, D) of ``layer`` at ``place``;
        returns the keys and values (B, H, S, D) attention reads and its boolean mask (None:
        every query sees every key)."""
        if isinstance(place, Contiguous):
            t = k.shape[2]
            end = place.start + t
            self.k[layer, place.rows, :, place.start : end] = k
            self.v[layer, place.rows, :, place.start : end] = v
            mask = None  # one new position sees every cached one
            if t > 1:  # (T, S) causal mask over the new block
                mask = torch.ones(t, end, dtype=torch.bool, device=k.device).tril(place.start)
            return self.k[layer, place.rows, :, :end], self.v[layer, place.rows, :, :end], mask
        # T == 1: row i writes position positions[i] of cache row rows[i]
        self.k[layer, place.rows, :, place.positions] = k[:, :, 0]
        self.v[layer, place.rows, :, place.positions] = v[:, :, 0]
        keys = self.k[layer, place.read_rows, :, : place.span]  # (B, H, span, D)
        values = self.v[layer, place.read_rows, :, : place.span]
        return keys, values, place.mask

    def read_prefix(self, row: int, n: int) -> tuple[Tensor, Tensor]:
        """Copies of the keys and values (layers, H, n, D) of the first ``n`` positions of a row."""
        return self.k[:, row, :, :n].clone(), self.v[:, row, :, :n].clone()

    def write_prefix(self, row: int, k: Tensor, v: Tensor) -> None:
        """Put keys and values (layers, H, n, D) of :meth:`read_prefix` at a row's first positions."""
        n = k.shape[2]
        self.k[:, row, :, :n] = k
        self.v[:, row, :, :n] = v


class PrefixCache:
    """The conditioning latents' keys and values of the ``voices`` most recent voices of one model.

    Keyed by the latents' content, so equal voices share an entry whatever object holds them.
    Thread-safe: an engine's streams and its scheduler may share one. A release-size fp32 entry
    is 7.5 MiB (2 x 30 layers x 16 heads x 32 positions x 64 dims x 4 bytes).
    """

    def __init__(self, voices: int = 8) -> None:
        if voices < 1:
            raise ParameterError(f"a prefix cache holds at least 1 voice, got {voices}")
        self.voices = voices
        self._entries: OrderedDict[bytes, tuple[Tensor, Tensor]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(cond_latents: Tensor) -> bytes:
        """The entry key of voice latents (1, L, C): a digest of their shape, dtype and values."""
        data = cond_latents.detach().float().cpu().contiguous()
        digest = hashlib.blake2b(data.numpy().tobytes(), digest_size=16)
        digest.update(repr(tuple(cond_latents.shape)).encode())
        return digest.digest()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> tuple[Tensor, Tensor] | None:
        """The keys and values (layers, H, L, D) cached for ``key``, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: bytes, k: Tensor, v: Tensor) -> None:
        """Keep ``k``, ``v`` for ``key``, dropping the least recently used voice when full."""
        with self._lock:
            self._entries[key] = (k, v)
            self._entries.move_to_end(key)
            while len(self._entries) > self.voices:
                self._entries.popitem(last=False)


def slot_positions(cfg: GPTConfig) -> int:
    """Sequence positions of one decoder slot by default: the longest prompt the model takes
    (conditioning latents, text, start code) plus its code limit."""
    return cfg.num_conditioning_latents + cfg.max_text_tokens + 1 + cfg.max_new_codes


def kv_pool_bytes(
    cfg: GPTConfig, max_streams: int, dtype: torch.dtype, max_positions: int | None = None
) -> int:
    """Bytes of the keys and values a :class:`~xtts_core.batch.BatchDecoder` allocates."""
    positions = max_positions or slot_positions(cfg)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return (
        2 * cfg.layers * max_streams * cfg.heads * positions * (cfg.width // cfg.heads) * itemsize
    )


def free_memory(device: torch.device) -> int:
    """Bytes the device can still give: CUDA's free memory, or the host's available memory
    (``MemAvailable`` of /proc/meminfo; the free pages where there is none)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # in kB
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_kv_pool(
    cfg: GPTConfig, max_streams: int, dtype: torch.dtype, device: torch.device,
    budget_bytes: int | None = None, max_positions: int | None = None,
) -> int:  # fmt: skip
    """The pool's bytes, after checking they fit the device's free memory and ``budget_bytes``.

    Raises:
        ParameterError: the pool does not fit; the message names the sizes, the limit and how
            many streams would fit.
    """
    need = kv_pool_bytes(cfg, max_streams, dtype, max_positions)
    free = free_memory(device)
    limit, what = free, f"{device.type} has {free / GIB:.2f} GiB free"
    if budget_bytes is not None and budget_bytes < limit:
        limit, what = budget_bytes, f"the budget is {budget_bytes / GIB:.2f} GiB"
    if need <= limit:
        return need
    per_stream = kv_pool_bytes(cfg, 1, dtype, max_positions)
    positions = max_positions or slot_positions(cfg)
    itemsize = torch.empty((), dtype=dtype).element_size()
    raise ParameterError(
        f"the KV pool of {max_streams} streams needs {need / GIB:.2f} GiB (2 x {cfg.layers} "
        f"layers x {cfg.heads} heads x {cfg.width // cfg.heads} head dims x {positions} "
        f"positions x {itemsize} bytes = {per_stream / 2**20:.1f} MiB per stream) but {what}: "
        f"at most {limit // per_stream} streams fit"
    )
