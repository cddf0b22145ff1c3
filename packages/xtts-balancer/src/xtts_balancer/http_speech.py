"""What the HTTP speech dialects share: one admitted request, its audio in pieces, its response.

:mod:`xtts_balancer.http_tts` (ElevenLabs), :mod:`xtts_balancer.openai_speech` (OpenAI) and
:mod:`xtts_balancer.coqui_api` (coqui's xtts-streaming-server) parse their own bodies and render
their own errors; between them and the session layer
(:class:`~xtts_balancer.session.SpeechSession`) sits this module:

- :func:`admit_request`: a request admitted (draining, ``limits.max_sessions``, the broker's
  signature or the key), named, logged and registered as a session; :func:`answer_refusals`
  turns what refuses it into the dialect's error answer, records that answer and gives back all
  the session took;
- :func:`read_json`: the body, at most :data:`MAX_BODY_BYTES`;
- :class:`Speech`: the admitted request holding its slot, its sentences spoken one job each into
  one encoder, cancelled by the client leaving or the drain;
- :class:`LeasedStream`: a streamed answer that gives everything back however it ends, and cuts
  the transfer short when synthesis fails after the headers went out;
- :func:`collect`: a whole answer, cancelled at once when the client leaves, and
  :func:`whole_file` (its bytes, a WAV file for ``wav``).

The invariant a changer must keep: whoever makes a :class:`Speech` hands its
:meth:`Speech.release` to the response (or calls it), so the slot is given back exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import soundfile
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from xtts_balancer.alignment import SegmentAligner
from xtts_balancer.encoders import make_encoder
from xtts_balancer.errors import SessionError
from xtts_balancer.http_common import ApiError
from xtts_balancer.http_models import CharacterAlignment
from xtts_balancer.sending import AudioOut
from xtts_balancer.session import SpeechSession, shutting_down
from xtts_balancer.worker.ipc import Latents
from xtts_core.protocol import Alignment, AudioFormat, ErrorCode, request_api_key

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "MAX_BODY_BYTES",
    "LeasedStream",
    "Speech",
    "SpeechPiece",
    "admit_request",
    "answer_refusals",
    "collect",
    "read_json",
    "whole_file",
]

logger = logging.getLogger(__name__)

#: Largest JSON body accepted (text is limited separately by ``limits.max_text_chars``).
MAX_BODY_BYTES = 1 << 20
#: Status of a whole-file answer whose client left (nginx's "client closed request"; unread).
CLIENT_CLOSED_REQUEST = 499


@dataclass
class SpeechPiece:
    """Encoded audio, the characters expected in it (seconds from the request's start) and its
    nominal duration."""

    audio: bytes
    alignment: CharacterAlignment | None
    duration_ms: float = 0.0


def admit_request(session: SpeechSession, request: Request) -> None:
    """Admit the request (draining, ``limits.max_sessions``, the broker's signature or the key),
    name it (the broker's session id, else the request's id), log it and register it as open.

    Raises:
        SessionError: what :meth:`SpeechSession.admit` refuses (``shutting_down``,
            ``invalid_api_key``, the session limits).
    """
    session.admit(
        request.method, request.url.path, request.headers,
        request_api_key(request.headers, request.query_params),
    )  # fmt: skip
    if session.needs_key:
        session.authenticate(None)
    session.session_id = session.session_id or request.state.request_id
    logger.info("%s: %s %s", session.tag, request.method, request.url.path)
    session.open()


@contextlib.contextmanager
def answer_refusals(
    session: SpeechSession, render: Callable[[SessionError | ApiError], ApiError]
) -> Iterator[None]:
    """Around a request's admission: a refusal raised in the body is re-raised as
    ``render(refusal)`` (the dialect's error answer), recorded as the session's answer; whatever
    is raised, the session is closed, giving back all it took."""
    try:
        yield
    except (SessionError, ApiError) as exc:
        if isinstance(exc, SessionError):
            session.record_failure(exc)  # error metrics, a log line with the session's tag
        error = render(exc)
        session.record.answered(error.status_code, error.error)
        session.close()
        raise error from None
    except BaseException:
        session.close()
        raise


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> object:
    """The request's JSON body.

    Raises:
        ApiError: ``payload_too_large`` over ``limit`` bytes, ``invalid_request`` naming
            ``body`` for what is not JSON.
    """
    size = int(request.headers.get("content-length") or 0)
    if size > limit:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"body larger than {limit} bytes")
    raw = await request.body()
    if len(raw) > limit:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"body larger than {limit} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        raise ApiError.invalid(["body"], f"body is not valid JSON: {exc}") from None


@dataclass(eq=False)
class Speech:
    """One admitted request and its :class:`SpeechSession`, which holds the slot until
    :meth:`release`; ended early by :meth:`end` or by the drain."""

    session: SpeechSession
    segments: list[str]
    language: str
    speed: float
    seed: int | None
    audio_format: AudioFormat
    latents: Latents | None = None
    """Speak with these latents instead of the session's voice (the coqui dialect)."""
    chunk_codes: int | None = None
    """Codes per streamed chunk after the first (``None``: ``stream.chunk_codes``)."""
    _ended_by: SessionError | None = field(default=None, init=False)

    def release(self) -> None:
        self.session.close()

    def end(self, reason: SessionError) -> None:
        """Stop generating now: the running job is cancelled and :meth:`pieces` raises
        ``reason``."""
        self._ended_by = reason
        if self.session.task is not None:
            self.session.task.cancel()

    def _reason(self) -> SessionError | None:
        return self._ended_by or (shutting_down() if self.session.gone_away else None)

    async def pieces(self) -> AsyncIterator[SpeechPiece]:
        """The audio in pieces as it is made (see :meth:`_pieces`).

        Raises:
            SessionError: a job failed, or the request was ended (:meth:`end`, the drain).
        """
        session = self.session
        session.task = asyncio.current_task()
        try:
            if (reason := self._reason()) is not None:
                raise reason
            async with contextlib.aclosing(self._pieces()) as pieces:  # closed (job cancelled)
                async for piece in pieces:  # at once when the consumer stops early
                    yield piece
        except asyncio.CancelledError:
            reason = self._reason()
            if reason is None:
                raise
            if session.task is not None:
                session.task.uncancel()
            raise reason from None
        finally:
            session.task = None

    async def _pieces(self) -> AsyncGenerator[SpeechPiece, None]:
        """The audio in pieces as it is made, with alignment in seconds from the start."""
        session = self.session
        state = session.state
        assert state.supervisor.sample_rate is not None
        encoder = make_encoder(self.audio_format, state.supervisor.sample_rate)
        aligner = SegmentAligner(state.settings.stream.ms_per_char)
        out = AudioOut(encoder, aligner, state.metrics.time_to_first_audio)
        offset_ms = 0.0
        for index, segment in enumerate(self.segments):
            separator = " " if index < len(self.segments) - 1 else ""
            spoken = session.speak(
                segment, out, language=self.language, speed=self.speed, seed=self.seed,
                separator=separator, latents=self.latents, chunk_codes=self.chunk_codes,
            )  # fmt: skip
            async for piece in spoken:
                if (reason := self._reason()) is not None:  # a cancel is lost if a chunk came
                    raise reason
                alignment = _seconds(piece.alignment, offset_ms)
                yield SpeechPiece(piece.audio, alignment, piece.duration_ms)
                offset_ms += piece.duration_ms
        tail = out.finish()
        if tail:
            yield SpeechPiece(tail, None, encoder.duration_ms(tail))


def _seconds(alignment: Alignment | None, offset_ms: float) -> CharacterAlignment | None:
    """A websocket :class:`~xtts_core.protocol.Alignment` (ms, relative) in HTTP form."""
    if alignment is None:
        return None
    starts = [(offset_ms + s) / 1000 for s in alignment.char_start_times_ms]
    return CharacterAlignment(
        characters=list(alignment.chars),
        character_start_times_seconds=[round(s, 3) for s in starts],
        character_end_times_seconds=[
            round(s + d / 1000, 3) for s, d in zip(starts, alignment.char_durations_ms, strict=True)
        ],
    )


class LeasedStream(StreamingResponse):
    """A streaming response that runs ``release`` however it ends (even if never iterated)."""

    def __init__(
        self, content: AsyncIterator[bytes], media_type: str, release: Callable[[], None]
    ) -> None:
        super().__init__(content, media_type=media_type)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()

    async def stream_response(self, send: Send) -> None:
        """Starlette's, except that a failed synthesis (already logged) ends the transfer
        without its last chunk: the server then closes the connection and the client sees a
        broken body, never a short one that looks complete, and no traceback is logged for an
        expected failure."""
        with contextlib.suppress(SessionError):
            await super().stream_response(send)


async def collect(request: Request, speech: Speech) -> list[SpeechPiece] | None:
    """Every piece of a whole-file request; ``None`` if the client left first, which cancels
    the running job at once (nobody reads a response until it is complete, so the request's
    ``http.disconnect`` is watched while the audio is made). Gives the session back.

    Raises:
        ApiError: a job failed (recorded as the session's answer).
    """
    collecting = asyncio.ensure_future(_all_pieces(speech))
    client_gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({collecting, client_gone}, return_when=asyncio.FIRST_COMPLETED)
        if not collecting.done():
            logger.info("%s: the client left; generation cancelled", speech.session.tag)
            speech.end(SessionError("The client left.", ErrorCode.CLIENT_LEFT))
            speech.session.record.answered(CLIENT_CLOSED_REQUEST, ErrorCode.CLIENT_LEFT.value)
            with contextlib.suppress(asyncio.CancelledError, SessionError):
                await collecting
            return None
        return collecting.result()
    except SessionError as exc:
        speech.session.record_failure(exc)
        error = ApiError.from_session(exc)
        speech.session.record.answered(error.status_code, error.error)
        raise error from None
    finally:
        client_gone.cancel()
        collecting.cancel()
        speech.release()


async def _all_pieces(speech: Speech) -> list[SpeechPiece]:
    return [piece async for piece in speech.pieces()]


async def _disconnected(request: Request) -> None:
    """Returns when the client has closed the connection (the body is already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def whole_file(speech: Speech, pieces: list[SpeechPiece]) -> bytes:
    """The pieces' audio as one file: as it came, or a WAV file for ``wav``."""
    audio = b"".join(piece.audio for piece in pieces)
    fmt = speech.audio_format
    if fmt.codec != "wav":
        return audio
    out = io.BytesIO()
    soundfile.write(
        out, np.frombuffer(audio, "<i2"), fmt.sample_rate, format="WAV", subtype="PCM_16"
    )
    return out.getvalue()
