"""What every route shares: :class:`BalancerState` (on ``app.state.balancer``) and its parts.

The state is built by the app's lifespan and reached by the routes through
:func:`balancer_state`. This module imports no route, so every route module can import it: the
routes stand on the state, and ``app.py`` assembles both. The invariant to keep: nothing here may
import a module that serves a request.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import json
import logging
import time
from pathlib import Path
from typing import Protocol

from starlette.requests import HTTPConnection

from xtts_balancer.auth import Authenticator
from xtts_balancer.broker import BrokerLinks
from xtts_balancer.metrics import Metrics
from xtts_balancer.pool import SlotPool
from xtts_balancer.settings import BalancerSettings
from xtts_balancer.supervisor import Supervisor, WorkerHandle
from xtts_balancer.voice_names import VoiceNames
from xtts_balancer.worker.ipc import WorkerConfig
from xtts_core.cluster import ReplayGuard
from xtts_core.single_use import SingleUseTokens

__all__ = ["BalancerState", "GenerationLog", "Session", "balancer_state"]

logger = logging.getLogger(__name__)


class Session(Protocol):
    """An open speech session (a websocket or an HTTP speech request), in ``state.sessions``
    while it runs, so the graceful drain waits for it and then ends it."""

    def going_away(self) -> None:
        """End now: the shutdown grace period is over."""


class GenerationLog:
    """One JSON line per generated segment in ``service.log_dir`` (``generations_<day>.log``:
    time to first audio, real-time factor, latency, audio length, codes)."""

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def write(self, **fields: float | int | str) -> None:
        if self._directory is None:
            return
        day = datetime.date.today().isoformat()
        line = json.dumps({"timestamp": time.time(), **fields})
        with (self._directory / f"generations_{day}.log").open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


class BalancerState:
    """Everything the endpoints share, on ``app.state.balancer``."""

    def __init__(self, settings: BalancerSettings, voice_cache_dir: Path) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.auth = Authenticator(settings.auth)
        self.generation_log = GenerationLog(settings.service.log_dir)
        self.sessions: set[Session] = set()
        """Open speech sessions, websocket and HTTP: drained on shutdown, counted in metrics."""
        self.key_sessions: collections.Counter[str] = collections.Counter()
        self.draining = False
        self.replay_guard = ReplayGuard(settings.cluster.max_clock_skew_s)
        self.single_use_tokens = SingleUseTokens(settings.auth.single_use_token_ttl_s)
        """Tokens of ``POST /v1/single-use-token/tts_websocket``, each accepted by one socket."""
        self.library_lock = asyncio.Lock()
        """Held while a change to the voice library is decided and made (voice_store)."""
        workers = settings.workers
        configs = [
            WorkerConfig(
                name=f"worker-{i}",
                model_dir=settings.model.directory,
                device=settings.device_for(i),
                dtype=settings.model.dtype,
                voices_dir=settings.model.voices_dir,
                ref_file=settings.model.ref_file,
                voice_cache_dir=voice_cache_dir,
                language=settings.model.language,
                slots=workers.slots_per_worker,
                torch_threads=workers.torch_threads,
                warmup_text=workers.warmup_text,
                log_level=logging.getLogger().getEffectiveLevel(),
                log_format=settings.service.log_format,
                backend=settings.model.backend,
                backend_options=settings.model.backend_options,
                kv_pool_bytes=workers.kv_pool_bytes,
                realtime_safety=workers.realtime_safety,
                cuda_graphs=workers.cuda_graphs,
            )
            for i in range(settings.service.instances)
        ]
        self.supervisor = Supervisor(
            configs, startup_timeout_s=workers.startup_timeout_s,
            restart_backoff_s=workers.restart_backoff_s, max_restarts=workers.max_restarts,
            stop_timeout_s=workers.stop_timeout_s, ping_interval_s=workers.ping_interval_s,
            ping_timeout_s=workers.ping_timeout_s, on_change=self._workers_changed,
            on_restart=self.metrics.worker_restarts.inc, on_load=self._worker_load,
        )  # fmt: skip
        self.voice_names = VoiceNames(settings.model, self.supervisor)
        """Resolves the voice ids clients send (aliases, the fallback)."""
        self.pool = SlotPool(
            self.supervisor.workers, workers.slots_per_worker, settings.queue.max_queue,
            settings.queue.queue_timeout_s, workers.capacity_aware,
        )  # fmt: skip
        self.broker = (
            None if settings.service.standalone_mode else BrokerLinks(settings, self._capacity)
        )
        self.metrics.watch_capacity(self._capacity)

    def _capacity(self) -> tuple[int, int]:
        """``(idle, capacity)``: free slots, and all slots of the warm workers."""
        return self.pool.free_slots, self.pool.capacity

    def _worker_load(self, worker: WorkerHandle) -> None:
        """A worker reported its measured speed: export it; capacity may have grown."""
        label = str(worker.index)
        if worker.realtime_streams is not None:
            self.metrics.worker_realtime_streams.labels(label).set(worker.realtime_streams)
        if worker.step_s is not None:
            self.metrics.worker_step_seconds.labels(label).set(worker.step_s)
        self.pool.dispatch()

    def _workers_changed(self) -> None:
        self.metrics.workers_ready.set(self.supervisor.ready_count)
        self.pool.dispatch()

    async def drain(self) -> None:
        """Refuse new sessions, let running ones finish within the grace period, close the rest
        with 1001."""
        self.draining = True
        grace = self.settings.service.graceful_timeout_s
        deadline = time.monotonic() + grace
        logger.info("draining %d sessions (grace %.1f s)", len(self.sessions), grace)
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self.sessions):
            session.going_away()
        deadline = time.monotonic() + 5.0
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


def balancer_state(connection: HTTPConnection) -> BalancerState:
    """The state of the app serving ``connection`` (a request or a websocket)."""
    state: BalancerState = connection.app.state.balancer
    return state
