"""Concurrent sessions against one balancer (issue 5, "Proof", "Benchmark"; the serving run of
issue 15 on a GPU).

Why: a balancer's worth is how many streams it serves at once and how long each client waits for
its first audio when many arrive together; both depend on the worker pool, the slot queue and the
front process, which this measures end to end with real worker processes. On a GPU the same run
is the serving proof: one CUDA worker whose batched slots carry N websocket sessions, each of
which must get its first audio soon and then keep ahead of playback.

How: ``python -m xtts_balancer serve`` runs in a process of its own on a socket bound here, with
``--instances`` workers of ``--slots`` batched stream slots each (one torch thread each unless
``--threads``) on ``--device`` in ``--dtype``, auth off, a queue as long as the largest
concurrency and a long queue timeout, over a random checkpoint of ``--size`` (or
``--model-dir``). For each concurrency N, N clients start at once; each opens the stream-input
websocket (pcm_24000), sends ``" "``, one sentence and ``""``, and reads until the close. Time
to first audio is from connect to the first audio message, so it includes the wait for a free
slot. Per session, RTF is (last audio - connect) / its audio seconds, and the session is *real
time* when, played from its first audio on, no chunk arrives after the moment it is due.

Prints one markdown table: N, sessions completed (close 1000 after ``isFinal``), errors by close
code, time to first audio p50/p95, RTF p50/p95, real-time sessions, audio seconds per session
and the wall time of the round. A round that outlasts ``--round-timeout`` is cut there and its
unfinished sessions count as errors ("timeout"). A benchmark, not a test: nothing asserts a
timing; numbers on a shared machine move with its load.

    python bench/bench_balancer.py                                  # 1 4 16 64 sessions, 2 workers
    python bench/bench_balancer.py --sessions 1 8 --instances 1 --max-new-codes 40
    python bench/bench_balancer.py --sessions 1 4 16 --instances 1 --slots 4   # batching
    python bench/bench_balancer.py --size release --device cuda --dtype bf16 --instances 1 \\
        --slots 256 --sessions 1 32 128 256 --max-new-codes 100     # the GPU serving run
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from xtts_balancer.launch import listen_local, spawn_balancer

TEXT = "The quick brown fox jumps over the lazy dog. "
RATE = 24000  # pcm_24000: 16-bit mono samples
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Session:
    """What one client saw: arrival times (from connect) and seconds of audio of each chunk."""

    arrivals: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    close_code: int | None = None

    @property
    def completed(self) -> bool:
        return self.close_code == 1000 and bool(self.arrivals)

    @property
    def audio_s(self) -> float:
        return sum(self.seconds)

    @property
    def rtf(self) -> float:
        return self.arrivals[-1] / self.audio_s

    @property
    def real_time(self) -> bool:
        """Played from the first chunk on without a gap: chunk k is due once the k-1 before it
        have played."""
        due = self.arrivals[0]
        for arrival, length in zip(self.arrivals, self.seconds, strict=True):
            if arrival > due + 1e-3:
                return False
            due += length
        return True


async def session(url: str) -> Session:
    """One client; a broken socket leaves ``close_code`` None."""
    t0 = time.perf_counter()
    seen = Session()
    try:
        async with connect(url, open_timeout=60, close_timeout=10, max_size=None) as ws:
            for message in ({"text": " "}, {"text": TEXT}, {"text": ""}):
                await ws.send(json.dumps(message))
            try:
                async for raw in ws:
                    audio = json.loads(raw).get("audio")
                    if audio:
                        seen.arrivals.append(time.perf_counter() - t0)
                        seen.seconds.append(len(base64.b64decode(audio)) / 2 / RATE)
            except ConnectionClosed:
                pass
            seen.close_code = ws.close_code
    except (OSError, TimeoutError, ConnectionClosed):
        pass
    return seen


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def p50_p95(values: list[float]) -> str:
    if not values:
        return "- / -"
    return f"{statistics.median(values):.3f} / {percentile(values, 0.95):.3f}"


async def round_of(url: str, n: int, timeout: float) -> str:
    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(session(url)) for _ in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    wall = time.perf_counter() - t0
    results = [task.result() for task in done]
    ok = [s for s in results if s.completed]
    codes = collections.Counter(s.close_code for s in results if not s.completed)
    errors = [f"{code or 'broken'}: {count}" for code, count in codes.items()]
    errors += [f"timeout: {len(pending)}"] if pending else []
    audio = [s.audio_s for s in ok]
    return (
        f"| {n} | {len(ok)} | {', '.join(errors) or '0'} | {p50_p95([s.arrivals[0] for s in ok])} "
        f"| {p50_p95([s.rtf for s in ok])} | {sum(s.real_time for s in ok)} "
        f"| {statistics.median(audio) if audio else 0:.2f} | {wall:.1f} |"
    )


def checkpoint(args: argparse.Namespace, tmp: Path) -> Path:
    if args.model_dir is not None:
        return Path(args.model_dir)
    if args.size == "tiny":
        from xtts_core.random_checkpoint import write_random_checkpoint

        return write_random_checkpoint(tmp / "tiny", "tiny", seed=0)
    from bench_core import ensure_checkpoint  # the cache bench_batch.py and the self-test share

    return ensure_checkpoint(ROOT / ".cache" / "bench" / args.size, args.size)[0]


def wait_ready(port: int, workers: int, server_alive: Callable[[], bool], limit_s: float) -> float:
    """Seconds until ``workers`` workers are ready; SystemExit if the server dies or never is."""
    t0 = time.monotonic()
    while True:
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).json()
            if ready["workers_ready"] == workers:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        if time.monotonic() - t0 > limit_s or not server_alive():
            raise SystemExit("the balancer did not become ready")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--slots", type=int, default=1, help="slots_per_worker (batch size)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--max-new-codes", type=int, default=20, help="audio codes per sentence")
    parser.add_argument("--model-dir", type=Path, help="checkpoint (default: random, --size)")
    parser.add_argument("--size", choices=["tiny", "mid", "release"], default="tiny")
    parser.add_argument("--device", default="cpu", help="the workers' device: cpu, cuda, auto")
    parser.add_argument("--dtype", default="fp32", help="the GPT's precision: fp32, bf16, fp16")
    parser.add_argument("--round-timeout", type=float, default=600.0, help="seconds per round")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds to ready")
    args = parser.parse_args()
    # A time limit (timeout(1) in gpu_matrix.sh) sends SIGTERM: stop the server on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    tmp = Path(tempfile.mkdtemp(prefix="bench-balancer-"))
    model_dir = checkpoint(args, tmp)
    sock = listen_local(1024)
    port = sock.getsockname()[1]
    config = {
        "service": {"instances": args.instances, "host": "127.0.0.1", "port": port},
        "model": {
            "directory": str(model_dir), "max_new_codes": args.max_new_codes,
            "device": args.device, "dtype": args.dtype,
        },
        "workers": {
            "torch_threads": args.threads, "slots_per_worker": args.slots,
            "startup_timeout_s": args.start_timeout,
        },
        "queue": {"max_queue": max(args.sessions), "queue_timeout_s": 600},
        "auth": {"enabled": False},
    }  # fmt: skip
    options = ["--bind", f"fd://{sock.fileno()}", "--log-level", "WARNING"]
    server = spawn_balancer(config, tmp, [sock], options)
    try:
        start_s = wait_ready(
            port, args.instances, lambda: server.poll() is None, args.start_timeout
        )
        url = (
            f"ws://127.0.0.1:{port}/v1/text-to-speech/default/stream-input?output_format=pcm_24000"
        )
        print(
            f"{args.size} model on {args.device} {args.dtype}: {args.instances} workers x "
            f"{args.slots} slots, {args.threads} torch thread(s) each, {args.max_new_codes} codes "
            f"per sentence, ready in {start_s:.1f} s, {os.cpu_count()} CPUs, load "
            f"{os.getloadavg()[0]:.2f}\n"
        )
        print(
            "| sessions | completed | errors | first audio p50 / p95 s | RTF p50 / p95 "
            "| real time | audio s per session | wall s |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for n in args.sessions:
            print(asyncio.run(round_of(url, n, args.round_timeout)), flush=True)
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
