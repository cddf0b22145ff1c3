"""The Starlette application: ``create_app(settings)``, its lifespan and the HTTP endpoints.

The lifespan builds everything inside ``try/finally``: metrics, the worker supervisor (workers
load and warm up in the background) and the slot pool; whatever happens, the workers are stopped
on the way out. ``/health`` answers as soon as the app runs; ``/ready`` only once a worker is warm.
``/metrics`` and ``/workers`` may need the admin key or live on the admin listener (see
:mod:`xtts_balancer.admin`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import json
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from xtts_balancer.admin import AdminGate
from xtts_balancer.auth import Authenticator
from xtts_balancer.broker import BrokerLinks
from xtts_balancer.http_common import ApiError, api_error_response
from xtts_balancer.jobs import Session
from xtts_balancer.metrics import Metrics
from xtts_balancer.openapi import api_routes
from xtts_balancer.pool import SlotPool
from xtts_balancer.settings import BalancerSettings
from xtts_balancer.supervisor import Supervisor, WorkerHandle
from xtts_balancer.worker.ipc import WorkerConfig
from xtts_balancer.ws import stream_input
from xtts_balancer.ws_multi import multi_stream_input
from xtts_core.asgi import LingeringClose
from xtts_core.cluster import ReplayGuard

__all__ = ["BalancerState", "GenerationLog", "create_app"]

logger = logging.getLogger(__name__)


class GenerationLog:
    """One JSON line per generated segment in ``service.log_dir`` (the original's metrics files)."""

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
            stop_timeout_s=workers.stop_timeout_s, on_change=self._workers_changed,
            on_restart=self.metrics.worker_restarts.inc, on_load=self._worker_load,
        )  # fmt: skip
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


def create_app(settings: BalancerSettings) -> Starlette:
    """The balancer application for ``settings`` (workers start with the lifespan)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        cache_dir = settings.model.voice_cache_dir
        temporary = cache_dir is None
        if cache_dir is None:
            cache_dir = Path(tempfile.mkdtemp(prefix="xtts-voices-"))
        state = BalancerState(settings, cache_dir)
        app.state.balancer = state
        try:
            state.supervisor.start()
            if state.broker is not None:
                state.broker.start()
            yield
        finally:
            if state.broker is not None:
                await state.broker.stop()
            await state.supervisor.stop()
            if temporary:
                shutil.rmtree(cache_dir, ignore_errors=True)

    routes = [
        Route("/health", _health),
        Route("/ready", _ready),
        Route("/workers/idle", _workers_idle),
        Route("/workers", _workers),
        WebSocketRoute("/v1/text-to-speech/{voice_id}/stream-input", stream_input),
        WebSocketRoute("/v1/text-to-speech/{voice_id}/multi-stream-input", multi_stream_input),
        *api_routes(),  # HTTP speech, voices, models, /openapi.json
    ]
    if settings.metrics.enabled:
        routes.append(Route("/metrics", _metrics))
    gate = Middleware(AdminGate, admin=settings.admin)  # admin key / admin listener
    return Starlette(
        routes=routes, lifespan=lifespan, middleware=[Middleware(LingeringClose), gate],
        exception_handlers={ApiError: api_error_response},
    )  # fmt: skip


def _state(request: Request) -> BalancerState:
    state: BalancerState = request.app.state.balancer
    return state


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _ready(request: Request) -> Response:
    ready = _state(request).supervisor.ready_count
    return JSONResponse(
        {"ready": ready > 0, "workers_ready": ready}, status_code=200 if ready else 503
    )


async def _workers_idle(request: Request) -> Response:
    return JSONResponse({"idle_workers": _state(request).pool.free_slots})


async def _workers(request: Request) -> Response:
    state = _state(request)
    return JSONResponse(
        {
            "workers": [
                {
                    "index": w.index,
                    "state": w.state,
                    "pid": w.pid,
                    "device": w.config.device,
                    "busy_slots": w.busy,
                    "slots": state.pool.slots_of(w),
                    "realtime_streams": w.realtime_streams,
                    "step_ms": None if w.step_s is None else round(w.step_s * 1000, 3),
                    "restarts": w.restarts,
                }
                for w in state.supervisor.workers
            ],
            "queued": state.pool.queued,
            "sessions": len(state.sessions),
        }
    )


async def _metrics(request: Request) -> Response:
    return Response(
        generate_latest(_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
