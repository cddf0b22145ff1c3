"""A whole deployment as real processes on 127.0.0.1: one broker, balancers in broker mode, and
their worker processes, with the observations the system suite asserts on.

Every process is a child of the test (``python -m xtts_broker serve``, ``python -m xtts_balancer
serve``), so a fault is a real signal to a real process. The fleet remembers every pid it ever
saw (broker, balancers, workers, respawned workers), so it can tell at the end whether anything
outlived it (an orphaned worker after its balancer was SIGKILLed, say).

The balancers run the deterministic ``tone`` backend by default (``tones.py`` reads its audio
back to check that each session got exactly its own words) and the tiny random XTTS checkpoint
when asked; each has ``workers`` worker processes with ``slots`` stream slots each.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from balancer_server import Server, base_config, join_broker, start_server, stop_process
from broker_servers import CLIENT_KEY, SECRET
from prometheus_client.parser import text_string_to_metric_families

from xtts_core.cluster import hash_api_key

__all__ = ["CLIENT_KEY", "BrokerProcess", "Fleet", "eventually", "two_balancers"]

HEARTBEAT_S = 0.5
TTL_S = 1.5


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> float:
    """Poll ``condition`` until it holds; return how long that took; fail naming ``what``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - start


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class BrokerProcess:
    """``python -m xtts_broker serve`` on a fixed address, so a restart keeps it (``host`` may
    be any 127.0.0.0/8 address: several brokers on one port emulate the pods of one headless
    Service)."""

    directory: Path
    strategy: str = "wide"
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "broker.log"

    def start(self) -> None:
        config = {
            "service": {
                "host": self.host,
                "port": self.port,
                "strategy": self.strategy,
                "graceful_timeout_s": 2.0,
                "balancer_timeout_seconds": 1.0,
                "websocket_ping_interval_s": None,
            },
            "cluster": {
                "secret": SECRET,
                "heartbeat_interval_s": HEARTBEAT_S,
                "heartbeat_ttl_s": TTL_S,
            },
            "auth": {"api_key_hashes": [hash_api_key(CLIENT_KEY)]},
            "routing": {"connect_timeout_s": 2.0, "read_timeout_s": 10.0},
        }
        config_file = self.directory / "broker.yaml"
        config_file.write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("XTTS_")}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "xtts_broker", "serve", "--config", str(config_file)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        eventually(self._listening, "the broker to listen", 30)

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"broker exited with {self.process.returncode}: {self.logs()}")
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.process is not None:
            stop_process(self.process, sig, timeout)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


@dataclass
class Fleet:
    """The broker and its balancers; see the module docstring."""

    directory: Path
    voices: Path
    model_dir: Path | None = None
    broker: BrokerProcess = field(init=False)
    balancers: dict[str, Server] = field(default_factory=dict)
    slots: dict[str, int] = field(default_factory=dict)
    """Stream slots per worker, by balancer."""
    seen_pids: set[int] = field(default_factory=set)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5))

    def __post_init__(self) -> None:
        self.broker = BrokerProcess(self.directory)

    # --- processes ----------------------------------------------------------------------------

    def start_balancer(
        self, name: str, *, workers: int = 2, slots: int = 8, max_queue: int = 0,
        tone_ms_per_char: float = 20.0, realtime_factor: float = 1.0, xtts: bool = False,
        stall_timeout_s: float = 3.0, cluster: dict[str, Any] | None = None,
        voices: Path | None = None,
    ) -> Server:  # fmt: skip
        """A balancer in broker mode; returns at once (it registers once its workers are warm).

        ``xtts`` runs the tiny random checkpoint instead of the tone backend;
        ``stall_timeout_s`` is how long a job may send nothing before its worker is killed;
        ``cluster`` adds keys to its ``cluster:`` section (other brokers, say); ``voices`` is
        its own ``voices_dir`` instead of the fleet's shared one."""
        config = self._config(workers, slots, max_queue, tone_ms_per_char, realtime_factor, xtts)
        config["workers"]["stall_timeout_s"] = stall_timeout_s
        if voices is not None:
            config["model"]["voices_dir"] = str(voices)
        join_broker(config, name, self.broker.url, self.broker.port, SECRET)
        config["cluster"].update(cluster or {})
        return self._start(name, config, slots)

    def start_standalone(
        self, name: str, *, workers: int = 2, slots: int = 8, max_queue: int = 0,
        tone_ms_per_char: float = 20.0,
    ) -> Server:  # fmt: skip
        """A standalone balancer (clients connect to it directly), ready when this returns."""
        config = self._config(workers, slots, max_queue, tone_ms_per_char, 1.0, xtts=False)
        server = self._start(name, config, slots)
        server.wait_ready(workers=workers)
        return server

    def _config(
        self, workers: int, slots: int, max_queue: int, tone_ms_per_char: float,
        realtime_factor: float, xtts: bool,
    ) -> dict[str, Any]:  # fmt: skip
        assert self.model_dir is not None or not xtts
        config = base_config(self.model_dir or self.directory, self.voices)
        if not xtts:
            config["model"] = {
                "backend": "tone",
                "voices_dir": str(self.voices),
                "backend_options": {
                    "ms_per_char": tone_ms_per_char,
                    "realtime_factor": realtime_factor,
                },
            }
        config["service"]["instances"] = workers
        config["workers"].update(slots_per_worker=slots, stall_timeout_s=3.0)
        config["queue"] = {"max_queue": max_queue, "queue_timeout_s": 2.0}
        config["auth"] = {"api_key_hashes": [hash_api_key(CLIENT_KEY)]}
        config["limits"] = {"max_message_bytes": 65536, "max_text_chars": 4000}
        return config

    def _start(self, name: str, config: dict[str, Any], slots: int) -> Server:
        directory = self.directory / f"{name}-{secrets.token_hex(3)}"
        directory.mkdir()
        server = start_server(directory, config)
        self.balancers[name], self.slots[name] = server, slots
        self.seen_pids.add(server.process.pid)
        return server

    def worker_pids(self, name: str) -> list[int]:
        """The balancer's live worker processes, as the balancer reports them."""
        pids = [int(w["pid"]) for w in self.balancers[name].workers() if w.get("pid")]
        self.seen_pids.update(pids)
        return pids

    def note_processes(self) -> None:
        """Remember every current descendant of the fleet's processes."""
        roots = [s.process.pid for s in self.balancers.values()]
        if self.broker.process is not None:
            roots.append(self.broker.process.pid)
        for pid in roots:
            self.seen_pids.add(pid)
            with contextlib.suppress(psutil.NoSuchProcess):
                self.seen_pids.update(c.pid for c in psutil.Process(pid).children(recursive=True))

    def survivors(self) -> list[str]:
        """Processes the fleet started that are still running (zombies excluded)."""
        alive = []
        for pid in sorted(self.seen_pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {' '.join(process.cmdline()[:4])}")
        return alive

    def rss_mb(self) -> float:
        """Resident memory of the broker, the balancers and their workers, in MB."""
        self.note_processes()
        total = 0
        for pid in self.seen_pids:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                total += psutil.Process(pid).memory_info().rss
        return total / 1e6

    def remove(self, name: str) -> None:
        """Stop balancer ``name`` and leave it out of the fleet (its pids stay remembered)."""
        self.note_processes()
        self.balancers.pop(name).stop()
        del self.slots[name]

    def stop(self) -> None:
        """SIGTERM everything (graceful shutdowns overlap), SIGKILL what does not exit."""
        self.note_processes()
        for server in self.balancers.values():
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGTERM)
        for server in self.balancers.values():
            server.stop(signal.SIGKILL)
        self.broker.stop()
        self.http.close()

    # --- observations -------------------------------------------------------------------------

    def listing(self, broker: BrokerProcess | None = None) -> dict[str, dict[str, Any]]:
        """The registry of ``broker`` (default: the fleet's) by balancer id."""
        url = (broker or self.broker).url
        response = self.http.get(
            url + "/broker/balancers", headers={"authorization": f"Bearer {SECRET}"}
        )
        response.raise_for_status()
        return {entry["id"]: entry for entry in response.json()["balancers"]}

    def idle(self, name: str) -> tuple[int, int]:
        """``(idle, capacity)`` as the balancer itself reports them: free slots, and the slots
        of its ready workers."""
        url = self.balancers[name].http_url
        idle = int(self.http.get(url + "/workers/idle").json()["idle_workers"])
        workers = self.http.get(url + "/workers").json()["workers"]
        ready = sum(1 for worker in workers if worker["state"] == "ready")
        return idle, ready * self.slots[name]

    def healthy(self, broker: BrokerProcess | None = None) -> set[str]:
        """The balancers in rotation at ``broker`` (default: the fleet's)."""
        try:
            listing = self.listing(broker)
        except httpx.HTTPError:
            return set()
        return {name for name, entry in listing.items() if entry["health"] == "healthy"}

    def at_rest(self, names: Iterator[str] | None = None) -> bool:
        """Every balancer is registered and healthy with all its slots free, and the broker's
        view matches (nothing reserved): no slot leaked anywhere."""
        wanted = set(names or self.balancers)
        for name in wanted:
            if self.balancers[name].process.poll() is not None:
                raise RuntimeError(f"balancer {name} exited:\n{self.balancers[name].logs()}")
        try:
            listing = self.listing()
            idle = {name: self.idle(name) for name in wanted}
        except (httpx.HTTPError, KeyError, ValueError):
            return False
        return all(
            name in listing
            and listing[name]["health"] == "healthy"
            and idle[name][0] == idle[name][1] > 0
            and listing[name]["idle"] == idle[name][0]
            and listing[name]["reserved"] == 0
            for name in wanted
        )

    def sessions_served(self) -> dict[str, float]:
        """``xtts_sessions_total`` of each balancer, from its own ``/metrics``."""
        served = {}
        for name, server in self.balancers.items():
            text = self.http.get(server.http_url + "/metrics").text
            samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
            served[name] = next(s.value for s in samples if s.name == "xtts_sessions_total")
        return served

    def capacity(self) -> int:
        return sum(self.idle(name)[1] for name in self.balancers)

    def tracebacks(self) -> list[str]:
        """Log files of the fleet (every process it ever ran) that hold a traceback: a failure
        the services expect (a worker dying, a client leaving) must be a log line, not a crash
        report."""
        return [
            str(log.relative_to(self.directory))
            for log in sorted(self.directory.rglob("*.log"))
            if "Traceback" in log.read_text(errors="replace")
        ]

    def logs(self) -> str:
        parts = [f"--- broker\n{self.broker.logs()}"]
        parts += [f"--- {name}\n{s.logs()}" for name, s in self.balancers.items()]
        return "\n".join(parts)


@contextlib.contextmanager
def two_balancers(
    directory: Path, voices: Path | None = None, model_dir: Path | None = None, **options: Any
) -> Iterator[Fleet]:
    """A broker and two balancers, ``east`` and ``west`` (``options`` as for
    :meth:`Fleet.start_balancer`), registered and idle; on exit everything is stopped, and no
    process may outlive the fleet. ``voices`` defaults to an empty folder (the tone backend's
    ``default`` voice)."""
    if voices is None:
        voices = directory / "voices"
        voices.mkdir()
    fleet = Fleet(directory, voices, model_dir)
    fleet.broker.start()
    try:
        for name in ("east", "west"):
            fleet.start_balancer(name, **options)
        eventually(fleet.at_rest, "both balancers registered and idle", 180)
        yield fleet
    finally:
        fleet.stop()
    assert fleet.survivors() == [], "processes outlived the fleet"
    assert fleet.tracebacks() == [], "tracebacks in the fleet's logs"
