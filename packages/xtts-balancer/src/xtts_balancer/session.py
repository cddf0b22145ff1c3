"""One speech session, whichever dialect it came in by: the layer under every speech endpoint.

A dialect (stream-input, multi-stream-input, HTTP speech, OpenAI speech) parses its own messages and renders its
own replies; everything between is here, written once:

- **admission** (:meth:`SpeechSession.admit`): refused while draining and over
  ``limits.max_sessions`` (websockets and HTTP alike); in broker mode the broker's signature,
  else the API key (:func:`~xtts_balancer.jobs.admit_key`: the per-key limit);
- **registration**: from :meth:`~SpeechSession.open` to :meth:`~SpeechSession.close` the session
  is in ``state.sessions`` and the session metrics, so the drain waits for it and then ends it
  (:meth:`~SpeechSession.going_away` cancels the task that serves it);
- **the voice** (:meth:`~SpeechSession.check_voice`) and its language;
- **the worker slot** (:meth:`~SpeechSession.slot`): FIFO queue, ``system_busy`` when full,
  ``too_many_concurrent_requests`` when timed out;
- **one segment spoken** (:meth:`~SpeechSession.speak`): its ``<break>`` pauses and SSML
  (``ssml``), a job per stretch of text on the leased worker (``normalize_text``), its audio as
  :class:`~xtts_balancer.sending.Piece` s with alignment, its metrics and generation-log line;
- **the end** (:meth:`~SpeechSession.record_failure`): error metrics and one log line carrying
  the session id; and, at :meth:`~SpeechSession.close`, the session's one summary line
  (:mod:`xtts_balancer.session_log`). A dialect tells the session's :attr:`~SpeechSession.record`
  what only it knows: the output format, and how it answered (close code or HTTP status).

The invariant a changer must keep: :meth:`~SpeechSession.close` gives back everything the session
took (slot, the key's session count, registration), whatever ended it, and may run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping

import numpy as np

from xtts_balancer.broker import balancer_id, verify_stream
from xtts_balancer.errors import SessionError
from xtts_balancer.jobs import (
    acquire_slot,
    admit_key,
    find_latents,
    job_events,
    new_job,
    record_segment,
)
from xtts_balancer.pool import Lease
from xtts_balancer.sending import AudioOut, Piece
from xtts_balancer.session_log import SessionRecord
from xtts_balancer.state import BalancerState
from xtts_balancer.worker.ipc import Chunk, JobDone, Latents
from xtts_core.cluster import OriginError, api_key_id, verify_request
from xtts_core.protocol import CloseCode, ErrorCode
from xtts_core.text.markup import Pause, parse_markup

__all__ = ["SpeechSession", "shutting_down", "verify_origin"]

logger = logging.getLogger(__name__)


def shutting_down() -> SessionError:
    """Why a session ends when the server drains."""
    return SessionError(
        "The server is shutting down.", ErrorCode.SHUTTING_DOWN, CloseCode.GOING_AWAY
    )


def verify_origin(state: BalancerState, method: str, path: str, headers: Mapping[str, str]) -> str:
    """The session id of a request or stream the broker signed (broker mode).

    Raises:
        SessionError: ``invalid_api_key`` (HTTP 403): no, a stale, a wrong or a replayed
            signature.
    """
    settings, cluster = state.settings, state.settings.cluster
    assert cluster.secret is not None
    try:
        if method == "GET":
            return verify_stream(settings, state.replay_guard, path, headers)
        session_id = verify_request(
            cluster.secret.get_secret_value(), method, path, headers,
            max_skew_s=cluster.max_clock_skew_s,
        )  # fmt: skip
        state.replay_guard.claim(session_id)
        return session_id
    except OriginError as exc:
        raise SessionError(
            f"This balancer is broker-managed; connect through the broker ({exc}).",
            ErrorCode.INVALID_API_KEY,
            status=403,
        ) from None


class SpeechSession:
    """One client's speech session (see the module docstring)."""

    def __init__(self, state: BalancerState, voice_id: str, kind: str) -> None:
        self.state = state
        self.settings = state.settings
        self.requested_voice_id = voice_id
        """The voice id the client sent."""
        self.voice_id = voice_id
        """The voice spoken with: :attr:`requested_voice_id` resolved by :meth:`check_voice`."""
        self.kind = kind
        """The dialect, for the logs: ``stream-input``, ``multi-stream-input``, ``http``,
        ``openai``."""
        self.session_id = ""
        """The session's id on every log line: the broker's in broker mode, else one made when
        the session opens (or closes, never opened)."""
        self.record = SessionRecord()
        """What the session did, written as one line when it closes."""
        self.task: asyncio.Task[object] | None = None
        """The task serving the session, cancelled by :meth:`going_away`."""
        self.gone_away = False
        self.identity: str | None = None
        self._lease: Lease | None = None
        self._open = False
        self._text_chars = 0
        self.ssml = False
        """``enable_ssml_parsing``: strip SSML tags other than ``<break>`` before speaking."""
        self.normalize_text = True
        """``apply_text_normalization`` is not ``off``: numbers, abbreviations and symbols are
        spelt out by the worker's tokenizer."""

    @property
    def tag(self) -> str:
        """``session=<id> voice=<voice>``: the prefix of every log line about this session."""
        return f"session={self.session_id or '-'} {self.kind} voice={self.voice_id!r}"

    # --- admission -------------------------------------------------------------------------------

    def admit(
        self, method: str, path: str, headers: Mapping[str, str], key: str | None,
        token: str | None = None,
    ) -> None:  # fmt: skip
        """Refuse while draining or over ``limits.max_sessions``; in broker mode check the
        broker's signature over ``method`` and ``path``, else admit ``key`` if one was sent, or
        else the single-use ``token`` (:mod:`xtts_balancer.tokens_api`; a websocket may still
        send its key in its first message: :meth:`authenticate`).

        Raises:
            SessionError: ``shutting_down``, ``too_many_concurrent_requests`` (also for the
                key's limit), ``invalid_api_key`` (also for a missing signature in broker mode).
        """
        state = self.state
        if state.draining:
            raise shutting_down()
        limit = self.settings.limits.max_sessions
        if limit is not None and len(state.sessions - {self}) >= limit:
            raise SessionError(
                f"Too many open sessions (limit {limit}); please try again later.",
                ErrorCode.TOO_MANY_CONCURRENT_REQUESTS, CloseCode.TRY_AGAIN_LATER,
            )  # fmt: skip
        if state.broker is not None:
            self.session_id = verify_origin(state, method, path, headers) or self.session_id
            self.record.key_id = api_key_id(key) if key else None  # checked by the broker
        elif key is not None:
            self.authenticate(key)
        elif token is not None:
            identity = state.single_use_tokens.consume(token)
            if identity is None:
                raise SessionError(
                    "The single-use token is unknown, expired or already used.",
                    ErrorCode.INVALID_API_KEY,
                )
            self.identity = admit_key(state, None, identity)

    @property
    def needs_key(self) -> bool:
        """No key was admitted yet and one is needed (not in broker mode)."""
        return self.identity is None and self.state.broker is None

    def authenticate(self, key: str | None) -> None:
        """Admit ``key``: its identity, counted against the key's session limit until close."""
        self.identity = admit_key(self.state, key)
        self.record.key_id = self.identity

    def count_text(self, text: str) -> None:
        """Count ``text`` against ``limits.max_text_chars`` (all the session's text together).

        Raises:
            SessionError: ``max_character_limit_exceeded``.
        """
        self._text_chars += len(text)
        if text.strip():
            self.record.text_arrived()
        limit = self.settings.limits.max_text_chars
        if self._text_chars > limit:
            raise SessionError(
                f"Too much text: a session may send at most {limit} characters.",
                ErrorCode.MAX_CHARACTER_LIMIT_EXCEEDED,
            )

    def check_voice(self, language: str) -> None:
        """Resolve the requested voice (:class:`~xtts_balancer.voice_names.VoiceNames`: an
        alias, the fallback) and refuse a voice or a language the workers do not serve (known
        once one is warm).

        Raises:
            SessionError: ``voice_not_found``, or ``invalid_message`` naming the languages.
        """
        self.voice_id = self.state.voice_names.resolve(self.requested_voice_id, self.tag)
        self.check_language(language)

    def check_language(self, language: str) -> None:
        """Refuse a language the workers do not speak (known once one is warm).

        Raises:
            SessionError: ``invalid_message`` naming the languages.
        """
        supervisor = self.state.supervisor
        if supervisor.languages and language not in supervisor.languages:
            raise SessionError.invalid(
                f"language {language!r} is not supported; supported: "
                + ", ".join(sorted(supervisor.languages))
            )

    # --- registration ------------------------------------------------------------------------------

    def open(self) -> None:
        """Count the session as open (drained on shutdown, in the session metrics)."""
        if self._open:
            return
        self._open = True
        self.session_id = self.session_id or secrets.token_hex(8)
        self.state.sessions.add(self)
        self.state.metrics.sessions_active.inc()
        self.state.metrics.sessions_total.inc()

    def close(self) -> None:
        """Give back the slot, the key's session count and the registration, and write the
        session's summary line (idempotent)."""
        self.release_slot()
        if self.identity is not None:
            self.state.key_sessions[self.identity] -= 1
            self.identity = None
        if self._open:
            self._open = False
            self.state.sessions.discard(self)
            self.state.metrics.sessions_active.dec()
        self.session_id = self.session_id or secrets.token_hex(8)
        self.record.write({
            "session_id": self.session_id, "dialect": self.kind, "voice": self.voice_id,
            "balancer_id": balancer_id(self.settings),
        })  # fmt: skip

    def going_away(self) -> None:
        """The shutdown grace period is over: end the session now."""
        self.gone_away = True
        if self.task is not None:
            self.task.cancel()

    # --- the worker slot -----------------------------------------------------------------------------

    @property
    def has_slot(self) -> bool:
        return self._lease is not None

    async def acquire_slot(self) -> None:
        """Lease a worker slot, now or after waiting in the FIFO queue (no-op if held).

        Raises:
            SessionError: ``system_busy`` or ``too_many_concurrent_requests`` (close 1013): the
                queue is full or the wait timed out.
        """
        if self._lease is None:
            self._lease = await acquire_slot(self.state)

    def release_slot(self) -> None:
        if self._lease is not None:
            self.state.pool.release(self._lease)
            self._lease = None

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a worker slot for the body (see :meth:`acquire_slot`)."""
        await self.acquire_slot()
        try:
            yield
        finally:
            self.release_slot()

    # --- speaking ----------------------------------------------------------------------------------

    async def speak(
        self, text: str, out: AudioOut, *, language: str, speed: float, seed: int | None,
        chunk_codes: int | None = None, separator: str = " ", latents: Latents | None = None,
    ) -> AsyncIterator[Piece]:  # fmt: skip
        """Speak one segment on the held slot (with ``latents`` instead of the session's voice
        when given): its audio in pieces with alignment, the last one carrying the segment's
        remaining characters (and ``separator``, the space that joins it to the next). Its
        ``<break>`` tags are silence and, with :attr:`ssml`, other SSML is stripped
        (:func:`~xtts_core.text.markup.parse_markup`): each stretch of text between pauses is one
        job, and a pause's silence carries no characters. Leaving early cancels the running job
        at the worker.

        Raises:
            SessionError: the job failed or its worker was lost.
        """
        assert self._lease is not None, "speak() needs a slot"
        parts = parse_markup(text, ssml=self.ssml)
        spoken = [i for i, part in enumerate(parts) if isinstance(part, str) and part.strip()]
        for index, part in enumerate(parts):
            if isinstance(part, Pause):
                for piece in out.silence(self._pause_samples(part)):
                    self.record.audio(piece.duration_ms)
                    yield piece
            elif index in spoken:
                joiner = separator if index == spoken[-1] else " "
                async for piece in self._speak_text(
                    part.strip(), joiner, out, language=language, speed=speed, seed=seed,
                    chunk_codes=chunk_codes, latents=latents,
                ):  # fmt: skip
                    yield piece

    def _pause_samples(self, pause: Pause) -> int:
        if pause.clamped:
            logger.info(
                "%s: <break> of %g ms clamped to %d ms", self.tag, pause.requested_ms, pause.ms
            )
        rate = self.state.supervisor.sample_rate
        assert rate is not None  # a slot is held, so a worker is ready
        return round(rate * pause.ms / 1000)

    async def _speak_text(
        self, text: str, separator: str, out: AudioOut, *, language: str, speed: float,
        seed: int | None, chunk_codes: int | None, latents: Latents | None,
    ) -> AsyncIterator[Piece]:  # fmt: skip
        """One job: ``text`` on the held slot (spoken with ``latents`` when given), its pieces,
        then its metrics."""
        assert self._lease is not None
        job = new_job(
            self.state, text, language=language, voice_id=self.voice_id, speed=speed, seed=seed,
            chunk_codes=chunk_codes, normalize=self.normalize_text, latents=latents,
        )  # fmt: skip
        started = time.monotonic()
        out.start(text + separator, speed)
        record = self.record
        record.spoken(len(text))
        async with contextlib.aclosing(job_events(self.state, self._lease, job)) as events:
            async for event in events:
                if isinstance(event, Chunk):
                    for piece in out.push(np.frombuffer(event.samples, np.float32)):
                        record.audio(piece.duration_ms)
                        yield piece
                    continue
                assert isinstance(event, JobDone)
                for piece in out.end():
                    record.audio(piece.duration_ms)
                    yield piece
                record.segment_done(event.seconds, out.audio_ms)
                self.state.metrics.characters.inc(len(text))
                record_segment(
                    self.state, event, started=started, first_audio_s=out.first_audio_s,
                    audio_ms=out.audio_ms,
                )  # fmt: skip

    async def latents(self, voice_id: str, clip: bytes | None = None) -> Latents:
        """The latents of ``voice_id`` (or of the audio file ``clip``) from the held slot's
        worker.

        Raises:
            SessionError: no such voice, a clip that is not audio, or the worker failed.
        """
        assert self._lease is not None, "latents() needs a slot"
        return await find_latents(self.state, self._lease, voice_id, clip)

    # --- the end -----------------------------------------------------------------------------------

    def record_failure(self, exc: SessionError) -> None:
        """Count ``exc`` in the error metrics and log it with the session's tag (the last one
        recorded is the summary line's ``error``)."""
        self.record.error = exc.error
        self.state.metrics.errors.labels(exc.error).inc()
        logger.info("%s: %s (%s)", self.tag, exc.message, exc.error)
