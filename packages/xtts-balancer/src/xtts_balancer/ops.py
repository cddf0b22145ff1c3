"""Operational endpoints: ``/health``, ``/ready``, ``/workers/idle``, ``/workers``, ``/metrics``.

``/health`` answers as soon as the app runs; ``/ready`` only once a worker is warm (load
balancers and the broker's probes use it). ``/metrics`` and ``/workers`` may need the admin key
or live on the admin listener (see :mod:`xtts_balancer.admin`).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xtts_balancer.state import balancer_state

__all__ = ["ops_routes"]


def ops_routes(*, metrics: bool) -> list[Route]:
    """The operational routes (``/metrics`` only with ``metrics``)."""
    routes = [
        Route("/health", _health),
        Route("/ready", _ready),
        Route("/workers/idle", _workers_idle),
        Route("/workers", _workers),
    ]
    if metrics:
        routes.append(Route("/metrics", _metrics))
    return routes


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _ready(request: Request) -> Response:
    ready = balancer_state(request).supervisor.ready_count
    return JSONResponse(
        {"ready": ready > 0, "workers_ready": ready}, status_code=200 if ready else 503
    )


async def _workers_idle(request: Request) -> Response:
    return JSONResponse({"idle_workers": balancer_state(request).pool.free_slots})


async def _workers(request: Request) -> Response:
    state = balancer_state(request)
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
        generate_latest(balancer_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
