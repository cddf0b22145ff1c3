"""xtts-broker: one ElevenLabs-compatible front door for many xtts balancers (no torch).

Run it with ``xtts-broker`` or ``python -m xtts_broker``; embed it with :func:`run_broker` or
:func:`create_app` for a :class:`BrokerSettings`. A new routing strategy goes in
:mod:`xtts_broker.strategy`.
"""

from __future__ import annotations

from xtts_broker.__about__ import __version__
from xtts_broker.app import create_app
from xtts_broker.serve import run_broker
from xtts_broker.settings import BrokerSettings

__all__ = ["BrokerSettings", "__version__", "create_app", "run_broker"]
