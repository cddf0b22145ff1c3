"""Which of our voices a client's voice id names: the one place a requested voice is resolved.

Clients configured for ElevenLabs send its voice ids (``21m00Tcm4TlvDq8ikWAM``) or names
(``Rachel``). :meth:`VoiceNames.resolve` turns a requested id into one the workers serve, for
every door that takes one (both websockets and HTTP speech through
:meth:`~xtts_balancer.session.SpeechSession.check_voice`; the voice look-ups and their settings
through :func:`~xtts_balancer.voices_api.require_voice`), in this order:

1. an id the workers serve is itself;
2. a key of ``model.voice_aliases`` is the voice it maps to;
3. with ``model.unknown_voice_fallback`` anything else is the default voice, logged with the
   session's tag (off by default: it stays ``voice_not_found``).

Before any worker is warm the served voices are unknown: an alias still maps and anything else
passes unchanged, to be resolved again once a worker is ready.
"""

from __future__ import annotations

import logging

from xtts_balancer.backends.base import DEFAULT_VOICE_ID
from xtts_balancer.errors import SessionError
from xtts_balancer.settings import ModelSection
from xtts_balancer.supervisor import Supervisor
from xtts_core.protocol import ErrorCode

__all__ = ["VoiceNames"]

logger = logging.getLogger(__name__)


class VoiceNames:
    """Resolves requested voice ids against the workers' voices (see the module docstring)."""

    def __init__(self, model: ModelSection, supervisor: Supervisor) -> None:
        self._aliases = model.voice_aliases
        self._fallback = model.unknown_voice_fallback
        self._supervisor = supervisor

    def resolve(self, requested: str, tag: str, *, fallback: bool = True) -> str:
        """The voice id the workers serve for ``requested``; ``tag`` prefixes the log line of a
        fallback (the session's, so it carries the session id). ``fallback=False`` refuses an
        unknown id even when the fallback is on (deleting a voice must name it).

        Raises:
            SessionError: ``voice_not_found``.
        """
        served = self._supervisor.voices
        if requested in served:
            return requested
        voice_id = self._aliases.get(requested, requested)
        if not served or voice_id in served:
            return voice_id
        if fallback and self._fallback:
            logger.info(
                "%s: voice %r is not served; speaking with the default voice", tag, requested
            )
            return DEFAULT_VOICE_ID
        raise SessionError(
            f"A voice with voice_id {requested!r} was not found.", ErrorCode.VOICE_NOT_FOUND
        )
