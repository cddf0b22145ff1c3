"""Concurrent sessions against one balancer (issue 5, "Proof", "Benchmark").

Why: a balancer's worth is how many streams it serves at once and how long each client waits for
its first audio when many arrive together; both depend on the worker pool, the slot queue and the
front process, which this measures end to end with real worker processes.

How: ``python -m xtts_balancer serve`` runs in a process of its own on a socket bound here, with
``--instances`` workers of ``--slots`` batched stream slots each (one torch thread each unless
``--threads``), auth off, a queue as long as
the largest concurrency and a long queue timeout, over the tiny random checkpoint (or
``--model-dir``). For each concurrency N, N clients start at once; each opens the stream-input
websocket, sends ``" "``, one sentence and ``""``, and reads until the close. Time to first audio is
from connect to the first audio message, so it includes the wait for a free slot.

Prints one markdown table: N, sessions completed (close 1000 after ``isFinal``), errors by close
code, time to first audio p50/p95, and the wall time of the round. A benchmark, not a test:
nothing asserts a timing; numbers on a shared machine move with its load.

    python bench/bench_balancer.py                                  # 1 4 16 64 sessions, 2 workers
    python bench/bench_balancer.py --sessions 1 8 --instances 1 --max-new-codes 40
    python bench/bench_balancer.py --sessions 1 4 16 --instances 1 --slots 4   # batching
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from xtts_balancer.launch import listen_local, spawn_balancer

TEXT = "The quick brown fox jumps over the lazy dog. "


async def session(url: str) -> tuple[float | None, int | None]:
    """One client: (seconds to first audio or None, close code or None if the socket broke)."""
    t0 = time.perf_counter()
    first: float | None = None
    try:
        async with connect(url, open_timeout=60, close_timeout=10) as ws:
            for message in ({"text": " "}, {"text": TEXT}, {"text": ""}):
                await ws.send(json.dumps(message))
            try:
                async for raw in ws:
                    if first is None and json.loads(raw).get("audio"):
                        first = time.perf_counter() - t0
            except ConnectionClosed:
                pass
            return first, ws.close_code
    except (OSError, TimeoutError, ConnectionClosed):
        return first, None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def round_of(url: str, n: int) -> str:
    t0 = time.perf_counter()
    results = await asyncio.gather(*(session(url) for _ in range(n)))
    wall = time.perf_counter() - t0
    ttfa = [first for first, code in results if first is not None and code == 1000]
    codes = collections.Counter(code for _, code in results if code != 1000)
    errors = ", ".join(f"{code or 'broken'}: {count}" for code, count in codes.items()) or "0"
    p50 = f"{statistics.median(ttfa):.2f}" if ttfa else "-"
    p95 = f"{percentile(ttfa, 0.95):.2f}" if ttfa else "-"
    return f"| {n} | {len(ttfa)} | {errors} | {p50} | {p95} | {wall:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--slots", type=int, default=1, help="slots_per_worker (batch size)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--max-new-codes", type=int, default=20, help="audio codes per sentence")
    parser.add_argument("--model-dir", type=Path, help="checkpoint (default: tiny, random)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-balancer-"))
    model_dir = args.model_dir
    if model_dir is None:
        from xtts_core.random_checkpoint import write_random_checkpoint

        model_dir = write_random_checkpoint(tmp / "tiny", "tiny", seed=0)
    sock = listen_local(1024)
    port = sock.getsockname()[1]
    config = {
        "service": {"instances": args.instances, "host": "127.0.0.1", "port": port},
        "model": {"directory": str(model_dir), "max_new_codes": args.max_new_codes},
        "workers": {"torch_threads": args.threads, "slots_per_worker": args.slots},
        "queue": {"max_queue": max(args.sessions), "queue_timeout_s": 600},
        "auth": {"enabled": False},
    }
    options = ["--bind", f"fd://{sock.fileno()}", "--log-level", "WARNING"]
    server = spawn_balancer(config, tmp, [sock], options)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).json()
                if ready["workers_ready"] == args.instances:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the balancer did not become ready")
            time.sleep(0.2)
        url = (
            f"ws://127.0.0.1:{port}/v1/text-to-speech/default/stream-input?output_format=pcm_16000"
        )
        print(
            f"{args.instances} workers x {args.slots} slots, {args.threads} torch thread(s) each, "
            f"{args.max_new_codes} codes per sentence, {os.cpu_count()} CPUs, load "
            f"{os.getloadavg()[0]:.2f}\n"
        )
        print("| sessions | completed | errors | TTFA p50 s | TTFA p95 s | wall s |")
        print("|---|---|---|---|---|---|")
        for n in args.sessions:
            print(asyncio.run(round_of(url, n)), flush=True)
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
