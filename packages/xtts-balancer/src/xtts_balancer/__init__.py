"""xtts-balancer: an ElevenLabs-compatible streaming TTS server over supervised XTTS workers."""

from __future__ import annotations

from xtts_balancer.__about__ import __version__

__all__ = ["__version__"]
