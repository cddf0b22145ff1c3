"""Client sessions for the system suite, each with its own tagged text, judged from what it got.

Three kinds, as real clients use the service through the broker:

- ``ws``: ``stream-input``: the first message, the text in pieces as an LLM would send it, the
  end-of-stream message, then read until the server closes;
- ``multi``: ``multi-stream-input`` with two contexts speaking at once, each flushed and closed,
  then ``close_socket``;
- ``http``: ``POST /v1/text-to-speech/{voice}/stream``, the body read as it arrives.

Every text carries a tag unique to its session (and context), and the audio is read back with
:class:`~tones.ToneReader`: a session is ``ok`` only if it closed normally *and* its audio reads
back exactly as its own text, nothing missing, nothing extra, nothing of anyone else's, and its
alignment spells that text. Against XTTS (no reader: a random model's audio cannot be read
back) ``ok`` means a normal close, some audio and the alignment of its own text.
Otherwise it is ``refused`` (1013 or HTTP 429/503 before any audio: the documented "busy"),
``error`` (an error message and a non-1000 close, or an aborted HTTP body: what a client of a
failed stream must see) or ``bad``: a hang, a stream reported complete with the wrong audio, or
an error without any explanation. ``bad`` must never happen.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from tones import ToneReader, expected_classes
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

__all__ = ["Gate", "Outcome", "SessionKind", "run_session", "session_text"]

SessionKind = Literal["ws", "multi", "http"]
Status = Literal["ok", "refused", "error", "bad"]
VOICE = "default"
QUERY = "output_format=pcm_24000"
BUSY_CLOSE = 1013
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class Gate:
    """Releases the sessions' text once ``expected`` websocket sessions have connected (or
    ended without connecting), or after ``timeout`` seconds at the latest, so that the load
    really peaks with all of them open together."""

    def __init__(self, expected: int, timeout: float) -> None:
        self._expected = expected
        self._seen: set[int] = set()
        self._timeout = timeout
        self.released = asyncio.Event()
        self.released_at = 0.0

    async def arrive(self, index: int) -> None:
        """Count session ``index`` as connected, then wait for the release."""
        self.count(index)
        await self.released.wait()

    def count(self, index: int) -> None:
        """Count session ``index`` (once, also when it ended before it could connect)."""
        self._seen.add(index)
        if len(self._seen) >= self._expected and not self.released.is_set():
            self.release()

    def release(self) -> None:
        self.released_at = time.monotonic()
        self.released.set()

    async def watchdog(self) -> None:
        await asyncio.sleep(self._timeout)
        if not self.released.is_set():
            self.release()


@dataclass
class Outcome:
    """How one session went, from the client's side."""

    kind: SessionKind
    tag: str
    started: float
    ended: float = 0.0
    first_audio_s: float | None = None
    status: Status = "bad"
    close_code: int | None = None
    detail: str = ""
    audio_bytes: int = 0

    def finish(self, status: Status, detail: str = "") -> Outcome:
        self.status, self.detail, self.ended = status, detail, time.monotonic()
        return self


def session_text(index: int, context: int = 0) -> tuple[str, str]:
    """A unique tag for session ``index`` (and ``context``) and a text that says it three
    times over two sentences, so it spans segments and jobs."""
    tag, n = "", index * 4 + context
    for _ in range(4):
        n, digit = divmod(n, 26)
        tag += _LETTERS[digit]
    return tag, f"speaker {tag} starts now. {tag} says the {index} quick foxes jump. end {tag}."


@dataclass
class _Heard:
    """Audio received for one text, with when it started."""

    started: float
    audio: bytearray = field(default_factory=bytearray)
    first_audio_s: float | None = None
    final: bool = False
    chars: str | None = None
    """The characters the alignment said were spoken (websockets only)."""

    def add(self, message: dict[str, Any]) -> None:
        if message.get("audio"):
            if self.first_audio_s is None:
                self.first_audio_s = time.monotonic() - self.started
            self.audio += base64.b64decode(message["audio"])
            if message.get("alignment"):
                self.chars = (self.chars or "") + "".join(message["alignment"]["chars"])
        if message.get("isFinal") is True:
            self.final = True


def _judge(reader: ToneReader | None, text: str, heard: _Heard) -> str:
    """'' when what was heard is ``text`` and nothing else; otherwise what is wrong.

    The alignment (when sent) must spell the text, spaces aside. With a ``reader`` (the tone
    backend) the audio itself must read back as the text; without one (XTTS: a random model's
    audio says nothing checkable) there must be some audio."""
    if heard.chars is not None and heard.chars.split() != text.split():
        return f"alignment spells {heard.chars[:60]!r}, not the text sent"
    if reader is None:
        return "" if heard.audio else "no audio"
    heard_classes, leftover = reader.read(bytes(heard.audio))
    wanted = expected_classes(text)
    if leftover:
        return f"{leftover} samples beyond the last whole character"
    if heard_classes == wanted:
        return ""
    if wanted[: len(heard_classes)] == heard_classes:
        return f"truncated: {len(heard_classes)} of {len(wanted)} characters"
    return f"foreign or garbled audio: {len(heard_classes)} characters heard, {len(wanted)} sent"


class _RefusedError(Exception):
    """The handshake or the request was answered "busy" (HTTP 429/503)."""


async def _send_all(ws: ClientConnection, messages: list[dict[str, Any]]) -> None:
    """Send in order; stop quietly if the server has closed (its reasons are read next)."""
    try:
        for message in messages:
            await ws.send(json.dumps(message))
    except ConnectionClosed:
        pass


async def _read_all(ws: ClientConnection, on_message: Callable[[dict[str, Any]], None]) -> None:
    """Read until the socket closes, however it closes."""
    try:
        async for raw in ws:
            on_message(json.loads(raw))
    except ConnectionClosed:
        pass


async def _open(url: str, key: str) -> ClientConnection:
    try:
        return await connect(url, additional_headers={"xi-api-key": key}, open_timeout=10)
    except InvalidStatus as exc:
        if exc.response.status_code in (429, 503):
            raise _RefusedError(f"HTTP {exc.response.status_code}") from None
        raise


def _verdict(
    outcome: Outcome, reader: ToneReader | None, texts: dict[str, str], heard: dict[str, _Heard],
    errors: list[dict[str, Any]], clean_close: bool,
) -> Outcome:  # fmt: skip
    """Judge a websocket session from its close and what each of its texts got."""
    outcome.audio_bytes = sum(len(h.audio) for h in heard.values())
    firsts = [h.first_audio_s for h in heard.values() if h.first_audio_s is not None]
    outcome.first_audio_s = min(firsts) if firsts else None
    if errors:
        outcome.detail = json.dumps(errors[-1])[:200]
    if clean_close and not errors:
        for name, text in texts.items():
            problem = _judge(reader, text, heard[name])
            if not problem and not heard[name].final:
                problem = "no final message"
            if problem:
                return outcome.finish("bad", f"{name}: {problem}")
        return outcome.finish("ok")
    if outcome.close_code == BUSY_CLOSE and not outcome.audio_bytes:
        return outcome.finish("refused", outcome.detail)
    if errors or outcome.close_code not in (None, 1000):
        # A failed stream: the client was told (an error message, or a close code saying so).
        return outcome.finish("error", outcome.detail or f"closed {outcome.close_code}")
    return outcome.finish("bad", f"closed {outcome.close_code} with no error and short audio")


async def _ws_session(
    base: str, key: str, index: int, reader: ToneReader | None, gate: Gate
) -> Outcome:
    tag, text = session_text(index)
    outcome = Outcome("ws", tag, time.monotonic())
    url = f"{base.replace('http', 'ws', 1)}/v1/text-to-speech/{VOICE}/stream-input?{QUERY}"
    heard = {tag: _Heard(0.0)}
    errors: list[dict[str, Any]] = []

    def on_message(message: dict[str, Any]) -> None:
        if "error" in message:
            errors.append(message)
        heard[tag].add(message)

    async with await _open(url, key) as ws:
        await _send_all(ws, [{"text": " "}])
        await gate.arrive(index)
        heard[tag].started = time.monotonic()
        half = len(text) // 2
        await _send_all(ws, [{"text": text[:half]}, {"text": text[half:]}, {"text": ""}])
        await _read_all(ws, on_message)
    outcome.close_code = ws.close_code
    return _verdict(outcome, reader, {tag: text}, heard, errors, ws.close_code == 1000)


async def _multi_session(
    base: str, key: str, index: int, reader: ToneReader | None, gate: Gate
) -> Outcome:
    texts = dict(session_text(index, context) for context in (1, 2))
    outcome = Outcome("multi", "+".join(texts), time.monotonic())
    url = f"{base.replace('http', 'ws', 1)}/v1/text-to-speech/{VOICE}/multi-stream-input?{QUERY}"
    heard = {name: _Heard(0.0) for name in texts}
    errors: list[dict[str, Any]] = []
    finals: set[str] = set()
    done = asyncio.Event()

    def on_message(message: dict[str, Any]) -> None:
        if "error" in message:
            errors.append(message)
        context = message.get("contextId")
        if context in heard:
            heard[context].add(message)
            if message.get("isFinal") is True:
                finals.add(context)
                if finals == set(texts):
                    done.set()

    async with await _open(url, key) as ws:
        await _send_all(ws, [{"text": " ", "context_id": name} for name in texts])
        await gate.arrive(index)
        start = time.monotonic()
        for name in texts:
            heard[name].started = start
        reading = asyncio.create_task(_read_all(ws, on_message))
        await _send_all(ws, [
            message for name, text in texts.items() for message in (
                {"text": text, "context_id": name, "flush": True},
                {"context_id": name, "close_context": True},
            )
        ])  # fmt: skip
        finished = asyncio.create_task(done.wait())
        await asyncio.wait({reading, finished}, return_when=asyncio.FIRST_COMPLETED)
        finished.cancel()
        if done.is_set():
            await _send_all(ws, [{"close_socket": True}])
        await reading
    outcome.close_code = ws.close_code
    return _verdict(outcome, reader, texts, heard, errors, ws.close_code == 1000)


async def _http_session(
    base: str, key: str, index: int, reader: ToneReader | None, gate: Gate,
    client: httpx.AsyncClient,
) -> Outcome:  # fmt: skip
    tag, text = session_text(index)
    outcome = Outcome("http", tag, time.monotonic())
    await gate.released.wait()
    heard = _Heard(time.monotonic())
    url = f"{base}/v1/text-to-speech/{VOICE}/stream?{QUERY}"
    try:
        async with client.stream(
            "POST", url, json={"text": text}, headers={"xi-api-key": key}
        ) as response:
            outcome.close_code = response.status_code
            if response.status_code != 200:
                body = (await response.aread()).decode(errors="replace")[:200]
                status: Status = "refused" if response.status_code in (429, 503) else "error"
                return outcome.finish(status, body)
            async for data in response.aiter_bytes():
                if heard.first_audio_s is None:
                    heard.first_audio_s = time.monotonic() - heard.started
                heard.audio += data
    except httpx.HTTPError as exc:  # an aborted body: the client knows the stream failed
        outcome.first_audio_s, outcome.audio_bytes = heard.first_audio_s, len(heard.audio)
        return outcome.finish("error", f"{type(exc).__name__}: {exc}"[:200])
    outcome.first_audio_s, outcome.audio_bytes = heard.first_audio_s, len(heard.audio)
    problem = _judge(reader, text, heard)
    return outcome.finish("bad" if problem else "ok", problem)


async def run_session(
    kind: SessionKind, base: str, key: str, index: int, reader: ToneReader | None, gate: Gate,
    http: httpx.AsyncClient, timeout: float,
) -> Outcome:  # fmt: skip
    """One session of ``kind`` against ``base`` (``http://host:port``); it opens at once and
    sends its text when ``gate`` releases it. Never raises: every way it can end is an :class:`Outcome`."""
    started = time.monotonic()
    try:
        return await _run(kind, base, key, index, reader, gate, http, timeout, started)
    finally:
        if kind != "http":
            gate.count(index)


async def _run(
    kind: SessionKind, base: str, key: str, index: int, reader: ToneReader | None, gate: Gate,
    http: httpx.AsyncClient, timeout: float, started: float,
) -> Outcome:  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            if kind == "ws":
                return await _ws_session(base, key, index, reader, gate)
            if kind == "multi":
                return await _multi_session(base, key, index, reader, gate)
            return await _http_session(base, key, index, reader, gate, http)
    except _RefusedError as exc:
        return Outcome(kind, "", started, close_code=None).finish("refused", str(exc))
    except TimeoutError:
        return Outcome(kind, "", started).finish("bad", f"hang: not done within {timeout:g} s")
    except (OSError, InvalidHandshake, ConnectionClosed) as exc:
        # Could not connect at all (a broker restarting): the client knows at once.
        return Outcome(kind, "", started).finish(
            "error", f"connect: {type(exc).__name__}: {exc}"[:200]
        )
