"""xtts-balancer: an ElevenLabs-compatible streaming TTS server over supervised XTTS workers.

The public API: :func:`create_app` (the Starlette app for a :class:`BalancerSettings`),
:func:`serve` (it under Hypercorn until a shutdown trigger), and the backend contract
(:class:`Backend`, :class:`Synthesis` and the two errors a backend raises). Everything else is
internal; ARCHITECTURE.md at the repository root maps it.
"""

from __future__ import annotations

from xtts_balancer.__about__ import __version__
from xtts_balancer.app import create_app
from xtts_balancer.backends.base import Backend, BackendFailedError, JobRejectedError, Synthesis
from xtts_balancer.serve import serve
from xtts_balancer.settings import BalancerSettings

__all__ = [
    "Backend",
    "BackendFailedError",
    "BalancerSettings",
    "JobRejectedError",
    "Synthesis",
    "__version__",
    "create_app",
    "serve",
]
