"""xtts-broker: one ElevenLabs-compatible front door for many xtts balancers (no torch).

Run it with ``xtts-broker`` or ``python -m xtts_broker``; embed it with
:func:`xtts_broker.serve.run_broker` or :func:`xtts_broker.app.create_app`.
"""

from __future__ import annotations

from xtts_broker.__about__ import __version__

__all__ = ["__version__"]
