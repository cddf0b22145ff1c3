"""Raw websocket clients for the hostile-input suite: frames built by hand, outcomes classified.

Why raw: the ``websockets`` client refuses to send what a hostile client sends (unmasked frames,
reserved bits, unknown opcodes, invalid UTF-8 in a text frame, a frame header with no payload,
a handshake trickled byte by byte), so these helpers speak RFC 6455 over a plain asyncio TCP
stream. Every read is bounded: a server that neither answers nor closes in time is reported as
``hang``, an outcome no test accepts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
from collections import Counter
from dataclasses import dataclass, field

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: A fixed masking key: servers must not care which key a client picks, and runs stay identical.
MASK_KEY = b"\x37\xfa\x21\x3d"
HANG = "hang"
EOF = "eof (no close frame)"


def frame(
    payload: bytes, opcode: int = OP_TEXT, *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """One websocket frame (RFC 6455 §5.2), masked as a client must unless ``mask`` is false."""
    head = bytes([(0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0xF])
    n, bit = len(payload), 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    if not payload:
        return head + MASK_KEY
    key = (MASK_KEY * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + MASK_KEY + masked


def text(message: object) -> bytes:
    """A masked text frame carrying ``message`` as JSON."""
    return frame(json.dumps(message).encode())


def handshake(port: int, path: str, headers: dict[str, str]) -> bytes:
    """The HTTP/1.1 upgrade request a websocket client sends first."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(b'hostile-client!!').decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Outcome:
    """How the server answered one connection."""

    status: int | None = None
    """The handshake's HTTP status (101 when upgraded); ``None`` if it never answered."""
    close_code: int | None = None
    errors: list[str] = field(default_factory=list)
    """The ``error`` field of every JSON error message the server sent."""
    audio_bytes: int = 0
    final: bool = False
    hung: bool = False

    @property
    def label(self) -> str:
        """A short name for the outcome, for the summary table (``1008 invalid_message``)."""
        if self.hung:
            return HANG
        if self.status != 101:
            return f"http {self.status}" if self.status is not None else EOF
        if self.close_code is None:
            return EOF
        return " ".join([str(self.close_code), *self.errors[-1:]])


class RawSocket:
    """One TCP connection speaking websocket by hand; use :func:`open_raw` to get one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.outcome = Outcome()

    async def send(self, *frames: bytes) -> None:
        """Write ``frames``; a server that already closed is not an error (the outcome says so)."""
        with contextlib.suppress(ConnectionError):
            self.writer.write(b"".join(frames))
            await self.writer.drain()

    async def read_response(self, timeout: float) -> Outcome:
        """Read the handshake's answer (the status; for a refusal, its JSON body's error)."""
        try:
            async with asyncio.timeout(timeout):
                head = await self.reader.readuntil(b"\r\n\r\n")
                self.outcome.status = int(head.split(b" ", 2)[1])
        except TimeoutError:
            self.outcome.hung = True
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
            pass
        return self.outcome

    async def read_until_closed(self, timeout: float, *, until_audio: bool = False) -> Outcome:
        """Read server frames until its close frame or EOF (with ``until_audio``: or the first
        audio), for at most ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while await self._read_frame():
                    if until_audio and self.outcome.audio_bytes:
                        break
        except TimeoutError:
            self.outcome.hung = True
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # EOF: the outcome has no close code
        return self.outcome

    async def _read_frame(self) -> bool:
        first, second = await self.reader.readexactly(2)
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await self.reader.readexactly(n)
        opcode = first & 0xF
        if opcode == OP_CLOSE:
            self.outcome.close_code = struct.unpack("!H", payload[:2])[0] if n >= 2 else 1005
            return False
        if opcode == OP_TEXT:
            self._note(json.loads(payload))
        return True

    def _note(self, message: dict[str, object]) -> None:
        if "error" in message:
            self.outcome.errors.append(str(message["error"]))
        audio = message.get("audio")
        if isinstance(audio, str):
            self.outcome.audio_bytes += len(base64.b64decode(audio))
        if message.get("isFinal"):
            self.outcome.final = True

    async def abort(self) -> None:
        """Drop the connection without a close frame (an abrupt disconnect)."""
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def open_raw(
    port: int, path: str, headers: dict[str, str], *, timeout: float = 10.0, upgrade: bool = True
) -> RawSocket:
    """Connect; with ``upgrade``, send the handshake and read its answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    raw = RawSocket(reader, writer)
    if upgrade:
        await raw.send(handshake(port, path, headers))
        await raw.read_response(timeout)
    return raw


@dataclass
class Tally:
    """What the fuzzer sent and got back, per target and category."""

    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def record(self, target: str, category: str, frames: int, outcome: Outcome | str) -> None:
        label = outcome if isinstance(outcome, str) else outcome.label
        self.sent[target, category] += frames
        self.outcomes[target, category, label] += 1

    def labels(self, target: str, category: str) -> set[str]:
        return {label for (t, c, label) in self.outcomes if (t, c) == (target, category)}

    def total(self, target: str | None = None) -> int:
        return sum(n for (t, _), n in self.sent.items() if target in (None, t))

    def table(self) -> str:
        """Categories by outcome, one row per target and category, frames sent on the right."""
        rows = [f"{'target':9} {'category':24} {'frames':>7}  outcomes (connections)"]
        for target, category in sorted(self.sent):
            outcomes = ", ".join(
                f"{label}: {n}"
                for (t, c, label), n in sorted(self.outcomes.items())
                if (t, c) == (target, category)
            )
            rows.append(f"{target:9} {category:24} {self.sent[target, category]:>7}  {outcomes}")
        rows.append(f"{'total':9} {'':24} {self.total():>7}")
        return "\n".join(rows)


async def http_status(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"",
    timeout: float = 10.0,
) -> int | None:  # fmt: skip
    """The status of one HTTP/1.1 request sent byte for byte as given (no client normalises
    ``..`` or refuses a NUL in ``path``); ``None`` if the server closed without answering."""
    raw = await open_raw(port, "", {}, upgrade=False)
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {len(body)}")
    await raw.send(("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body)
    outcome = await raw.read_response(timeout)
    await raw.close()
    assert not outcome.hung, f"{method} {path!r}: no answer in {timeout} s"
    return outcome.status
