"""Cost of the broker's routing (issue 6, "Proof", "Benchmark").

Why: every stream a client opens through ``xtts-broker`` pays for an extra hop (authentication,
a routing decision, a signed websocket handshake to the chosen balancer, one relay of every frame),
and one broker serves a whole fleet, so both its added latency and the rate at which it can route
new sessions bound what the cluster can offer. No model and no GPU are involved: the balancer is
the broker tests' stand-in, :class:`FakeBalancer` from ``tests/broker/broker_fake_balancer.py``,
which answers every text message at once with a few bytes of "audio", so what is measured is the
broker and the network stack, not synthesis.

How: the broker runs as ``python -m xtts_broker`` in a process of its own (pinned to one core with
``--broker-cpu``), with client authentication on and logging at WARNING; one fake balancer with
ample slots registers with it and heartbeats. A session is what a client does: open the stream-input websocket,
send the initial ``" "`` message and one sentence, wait for the first audio message, send ``""``
and read until the close. Clients and the fake balancer share this script's event loop.

Prints two markdown tables:

- time to first audio (connect to first audio message) direct to the balancer and through the
  broker, p50 and p95 over ``--sessions`` sessions taken in alternation, and the routing overhead
  (through the broker minus direct, at the same percentile);
- sessions per second at each ``--concurrency``, direct and through the broker. The direct rate is
  this script's own ceiling (client plus fake balancer on one loop); a broker rate close to it means
  the client side, not the broker, was the limit.

A benchmark, not a test: nothing asserts a timing. Numbers on a shared machine move with its
load; the load average is printed at start and end.

    hatch run python bench/bench_broker.py                      # any env with xtts-broker
    hatch run python bench/bench_broker.py --broker-cpu 1 --concurrency 1 16 64
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "broker"))
from broker_fake_balancer import FakeBalancer  # the tests' stand-in balancer

from xtts_core.cluster import hash_api_key, sign_request

SECRET = "bench-cluster-secret-0123456789"
CLIENT_KEY = "bench-client-key"
STREAM_PATH = "/v1/text-to-speech/bench/stream-input"
#: Well inside the broker's default capacity_fresh_s (6 s): the broker routes on heartbeats, as
#: in a healthy cluster, instead of probing /workers/idle for every session.
HEARTBEAT_S = 2.0

#: Opens a stream and returns its time to first audio in seconds.
Session = Callable[[], Awaitable[float]]


async def session(url: str, headers: dict[str, str]) -> float:
    """One client session (see the module docstring); returns seconds to the first audio."""
    begin = time.perf_counter()
    async with connect(url, additional_headers=headers, ping_interval=None) as ws:
        await ws.send(json.dumps({"text": " "}))
        await ws.send(json.dumps({"text": "Hello from the benchmark. "}))
        first = json.loads(await ws.recv())
        ttfa = time.perf_counter() - begin
        if "audio" not in first:
            raise RuntimeError(f"expected audio, got {first}")
        await ws.send(json.dumps({"text": ""}))
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass
    return ttfa


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def broker_process(folder: Path, cpu: int | None) -> AsyncIterator[str]:
    """``python -m xtts_broker`` on a free loopback port; yields its URL once /health answers."""
    port = _free_port()
    config = folder / "broker.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "service": {"host": "127.0.0.1", "port": port, "websocket_ping_interval_s": None},
                "cluster": {"secret": SECRET},
                "auth": {"api_key_hashes": [hash_api_key(CLIENT_KEY)]},
            }
        )
    )
    quiet = folder / "log.json"
    quiet.write_text(json.dumps({"version": 1, "root": {"level": "WARNING"}}))
    command = [sys.executable, "-m", "xtts_broker", "--config", str(config)]
    proc = subprocess.Popen([*command, "--log-config", str(quiet)])
    if cpu is not None:
        os.sched_setaffinity(proc.pid, {cpu})
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                if proc.poll() is not None:
                    raise RuntimeError(f"the broker exited with {proc.returncode}")
                with contextlib.suppress(httpx.TransportError):
                    (await http.get(url + "/health", timeout=1)).raise_for_status()
                    break
                await asyncio.sleep(0.05)
            else:
                raise TimeoutError("the broker did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def sessions_per_second(open_session: Session, sessions: int, concurrency: int) -> float:
    """Sessions completed per second with ``concurrency`` clients at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await open_session()

    begin = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(sessions)))
    return sessions / (time.perf_counter() - begin)


async def run(args: argparse.Namespace) -> None:
    balancer = FakeBalancer("bench", SECRET, slots=100_000)
    async with contextlib.AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        broker = await stack.enter_async_context(broker_process(folder, args.broker_cpu))
        await stack.enter_async_context(balancer.running(broker, heartbeat_s=HEARTBEAT_S))
        direct_url = f"ws://127.0.0.1:{balancer.port}{STREAM_PATH}"
        via_url = broker.replace("http://", "ws://") + STREAM_PATH
        counter = iter(range(sys.maxsize))

        async def direct() -> float:
            # The balancer takes only streams signed by the broker: sign as it would.
            headers = sign_request(SECRET, "GET", STREAM_PATH, session_id=f"bench-{next(counter)}")
            return await session(direct_url, headers)

        async def via_broker() -> float:
            return await session(via_url, {"xi-api-key": CLIENT_KEY})

        for _ in range(args.warmup):
            await direct()
            await via_broker()
        times: dict[str, list[float]] = {"direct": [], "broker": []}
        for _ in range(args.sessions):  # alternated, so load drifts hit both alike
            times["direct"].append(await direct())
            times["broker"].append(await via_broker())
        rates = [
            (
                concurrency,
                await sessions_per_second(direct, args.rate_sessions, concurrency),
                await sessions_per_second(via_broker, args.rate_sessions, concurrency),
            )
            for concurrency in args.concurrency
        ]

    print(f"\nTime to first audio, {args.sessions} sessions each (ms):\n")
    print("| path | p50 | p95 |")
    print("|---|---:|---:|")
    stats = {
        name: (percentile(values, 0.5) * 1e3, percentile(values, 0.95) * 1e3)
        for name, values in times.items()
    }
    for name, (p50, p95) in stats.items():
        print(f"| {name} | {p50:.2f} | {p95:.2f} |")
    print(
        f"| routing overhead (broker - direct) | {stats['broker'][0] - stats['direct'][0]:.2f} "
        f"| {stats['broker'][1] - stats['direct'][1]:.2f} |"
    )
    print(f"\nSessions per second, {args.rate_sessions} sessions per row:\n")
    print("| concurrency | direct | through the broker |")
    print("|---:|---:|---:|")
    for concurrency, direct_rate, broker_rate in rates:
        print(f"| {concurrency} | {direct_rate:.0f} | {broker_rate:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200, help="sessions per TTFA row")
    parser.add_argument("--warmup", type=int, default=10, help="untimed sessions per path first")
    parser.add_argument(
        "--rate-sessions", type=int, default=400, help="sessions per sessions-per-second row"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument(
        "--broker-cpu", type=int, help="pin the broker process to this CPU (Linux; one core)"
    )
    args = parser.parse_args()
    if min(args.sessions, args.rate_sessions, *args.concurrency) < 1 or args.warmup < 0:
        parser.error("--sessions, --rate-sessions and --concurrency need at least 1, --warmup 0")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    asyncio.run(run(args))
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
