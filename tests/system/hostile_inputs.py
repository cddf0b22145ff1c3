"""What the fuzzer sends: hypothesis strategies for hostile messages and frames, each with the
outcomes the protocol documents for it.

A :class:`Case` is one connection's worth of frames (after the handshake) and the set of outcome
labels (:attr:`hostile_frames.Outcome.label`) that count as handled. The sets come from
``xtts_core.protocol.CloseCode`` and docs/protocol.md: bad JSON, wrong types and out-of-range
values are ``1008 invalid_message``; a binary frame is ``1003 unsupported_data``; a message over
``limits.max_message_bytes`` is ``1009 message_too_big`` (over Hypercorn's own limit, a bare
1009). A protocol violation (unmasked frame, reserved bits or opcode, invalid UTF-8 in a text
frame, bad fragmentation) is detected by wsproto, which computes 1002/1007, but Hypercorn 0.18
only answers a close it received, so it drops the connection without a close frame: ``eof`` is
accepted there and only there. ``1011`` and ``hang`` are never accepted.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from hostile_frames import EOF, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, frame, text
from hostile_servers import MULTI_PATH, STREAM_PATH
from hypothesis import strategies as st

INVALID = "1008 invalid_message"
TOO_BIG = "1009 message_too_big"
#: A message that parsed and was used: the session then ended normally on EOS / close_socket.
ACCEPTED = "1000"
#: Outcomes of a well-formed message with arbitrary content: used, or refused as invalid.
ACCEPTED_OR_INVALID = frozenset({ACCEPTED, INVALID, "1008 max_character_limit_exceeded"})
PROTOCOL_ERROR = frozenset({EOF, "1002", "1007"})
LIMIT_BYTES = 4096
"""``limits.max_message_bytes`` of the servers under attack (``balancer_server.base_config``)."""
HYPERCORN_LIMIT = 1 << 20
"""Hypercorn's ``websocket_max_message_size`` on both services (balancer: max(4 × limit, 1 MiB))."""

#: Fields the two sockets know, so generated objects hit real validators, not only "unknown".
FIELDS = (
    "text", "flush", "try_trigger_generation", "voice_settings", "generation_config",
    "xi_api_key", "context_id", "contextId", "close_context", "close_socket",
    "pronunciation_dictionary_locators",
)  # fmt: skip
NUMERIC_PATHS = (
    '{{"text": " ", "voice_settings": {{"speed": {}}}}}',
    '{{"text": " ", "voice_settings": {{"stability": {}, "similarity_boost": 0.5}}}}',
    '{{"text": " ", "voice_settings": {{"style": {}}}}}',
    '{{"text": " ", "generation_config": {{"chunk_length_schedule": [{}, 120]}}}}',
    '{{"text": {}}}',
    '{{"text": "Hi.", "flush": {}}}',
    '{{"text": " ", "context_id": {}}}',
)
NUMBER_TOKENS = (
    "1e308", "-1e308", "1e400", "-1e400", "4.9e-324", "-1", "0", "-0.0", "NaN", "Infinity",
    "-Infinity", "9" * 400, "-" + "9" * 400, "1" + "0" * 4000,
)  # fmt: skip
#: Numbers JSON has no token for: refused by the parser whatever field they are in.
NON_JSON_NUMBERS = frozenset({"NaN", "Infinity", "-Infinity"})


@dataclass(frozen=True)
class Case:
    """One hostile connection: ``frames`` after the handshake, then read until closed."""

    category: str
    path: str
    frames: tuple[bytes, ...]
    allowed: frozenset[str]

    def __repr__(self) -> str:
        shown = b"|".join(f[:60] for f in self.frames[:4])
        return f"Case({self.category!r}, {self.path!r}, {len(self.frames)} frames: {shown!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints failing cases with this: short, not megabytes of frames."""
        printer.text(repr(self))


def end_of(path: str) -> bytes:
    """The frame that ends a session normally on ``path`` (EOS, or close_socket)."""
    return text({"close_socket": True} if path == MULTI_PATH else {"text": ""})


paths = st.sampled_from([STREAM_PATH, MULTI_PATH])
json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _is_object(raw: str) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


@st.composite
def bad_json(draw: st.DrawFn) -> Case:
    """Text that is not a JSON object: broken syntax, or a JSON array, string, number, null."""
    raw = draw(
        st.text(max_size=120).filter(lambda s: not _is_object(s))
        | json_values.map(json.dumps).filter(lambda s: not _is_object(s))
        | st.sampled_from(['{"text": "a"', "{'text': 'a'}", '{"text": "a",}', "{", "}", ""])
    )
    return Case("bad_json", draw(paths), (frame(raw.encode()),), frozenset({INVALID}))


@st.composite
def wrong_types(draw: st.DrawFn) -> Case:
    """Objects over the protocol's own field names with values of any JSON type."""
    path = draw(paths)
    message = draw(
        st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, min_size=1)
    )
    return Case("wrong_types", path, (text(message), end_of(path)), ACCEPTED_OR_INVALID)


@st.composite
def huge_numbers(draw: st.DrawFn) -> Case:
    """Extreme numbers (1e308, 10**400, NaN/Infinity tokens, -1) in numeric and other fields."""
    path = draw(paths)
    token = draw(st.sampled_from(NUMBER_TOKENS))
    raw = draw(st.sampled_from(NUMERIC_PATHS)).format(token).encode()
    allowed = frozenset({INVALID}) if token in NON_JSON_NUMBERS else ACCEPTED_OR_INVALID
    if len(raw) > LIMIT_BYTES:
        allowed = frozenset({TOO_BIG})
    return Case("huge_numbers", path, (frame(raw), end_of(path)), allowed)


@st.composite
def deep_nesting(draw: st.DrawFn) -> Case:
    """Arrays or objects nested 10 to 10,000 levels deep, in a field or as the whole message."""
    depth = draw(st.sampled_from([10, 500, 1000, 1500, 2000, 10_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    inner = opener * depth + "0" + closer * depth
    raw = draw(st.sampled_from([inner, f'{{"text": " ", "voice_settings": {inner}}}']))
    # Nested objects inside voice_settings are unknown fields, ignored (§9.2): a valid BOS.
    allowed = frozenset({TOO_BIG}) if len(raw) > LIMIT_BYTES else frozenset({INVALID, ACCEPTED})
    path = draw(paths)
    return Case("deep_nesting", path, (frame(raw.encode()), end_of(path)), allowed)


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@st.composite
def invalid_utf8(draw: st.DrawFn) -> Case:
    """Text frames whose payload is not UTF-8 (alone, or inside a JSON string)."""
    junk = draw(st.binary(min_size=1, max_size=64).filter(_not_utf8))
    payload = draw(st.sampled_from([junk, b'{"text": "' + junk + b'"}']))
    return Case("invalid_utf8", draw(paths), (frame(payload),), PROTOCOL_ERROR)


@st.composite
def binary_frames(draw: st.DrawFn) -> Case:
    """A binary frame first, or after a valid BOS (even one holding valid JSON)."""
    path = draw(paths)
    data = draw(st.binary(max_size=300) | st.just(b'{"text": " "}'))
    frames = (frame(data, OP_BINARY),)
    if draw(st.booleans()):
        frames = (text({"text": " "}), *frames)
    return Case("binary_frames", path, frames, frozenset({"1003 unsupported_data"}))


@st.composite
def oversize(draw: st.DrawFn) -> Case:
    """Messages just over, well over, and over Hypercorn's limit (the last ones rarely: 1 MiB)."""
    size = draw(
        st.integers(LIMIT_BYTES + 1, 4 * LIMIT_BYTES)
        | st.integers(4 * LIMIT_BYTES, 64 * 1024)
        | st.just(HYPERCORN_LIMIT + 1)
    )
    raw = b'{"text": "' + b"a" * (size - 12) + b'"}'
    allowed = frozenset({TOO_BIG, "1009"}) if size > HYPERCORN_LIMIT else frozenset({TOO_BIG})
    return Case("oversize", draw(paths), (frame(raw),), allowed)


BOS = text({"text": " "})
PROTOCOL_VIOLATIONS: dict[str, tuple[bytes, ...]] = {
    "unmasked": (frame(b'{"text": " "}', mask=False),),
    "rsv1": (frame(b'{"text": " "}', rsv=4),),
    "rsv3": (BOS, frame(b'{"text": "Hi."}', rsv=7)),
    **{f"opcode {op:#x}": (frame(b"x", op),) for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xF)},
    "continuation first": (frame(b'{"text": " "}', OP_CONT),),
    "text inside fragments": (frame(b'{"text"', fin=False), frame(b': " "}')),
    "fragmented ping": (frame(b"x", OP_PING, fin=False),),
    "ping over 125 bytes": (frame(b"x" * 126, OP_PING),),
    "close with 1 byte": (frame(b"\x03", OP_CLOSE),),
    "close code 999": (frame(struct.pack("!H", 999), OP_CLOSE),),
    "close code 1005": (frame(struct.pack("!H", 1005), OP_CLOSE),),
    "close reason not UTF-8": (frame(struct.pack("!H", 1000) + b"\xff", OP_CLOSE),),
}


@st.composite
def protocol_violations(draw: st.DrawFn) -> Case:
    """Frames RFC 6455 forbids a client to send."""
    name = draw(st.sampled_from(sorted(PROTOCOL_VIOLATIONS)))
    return Case("protocol_violations", draw(paths), PROTOCOL_VIOLATIONS[name], PROTOCOL_ERROR)


hostile_cases = st.one_of(
    bad_json(), wrong_types(), huge_numbers(), deep_nesting(), invalid_utf8(), binary_frames(),
    oversize(), protocol_violations(),
)  # fmt: skip


def fragments(message: object, size: int = 1) -> list[bytes]:
    """``message`` as a text frame and continuation frames of ``size`` bytes, a ping between
    every two (control frames may interleave a fragmented message, RFC 6455 §5.4)."""
    raw = json.dumps(message).encode()
    pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
    frames: list[bytes] = []
    for i, piece in enumerate(pieces):
        frames.append(frame(piece, OP_TEXT if i == 0 else OP_CONT, fin=i == len(pieces) - 1))
        if i % 2:
            frames.append(frame(b"p", OP_PING))
    return frames
