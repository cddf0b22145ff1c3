"""The multi-stream-input websocket against a real server (see conftest.py): contexts end to end."""

from __future__ import annotations

import base64
import json
import time
from collections import defaultdict
from typing import Any

from balancer_server import CLIP_VOICE, KEY, Reply, Server, read_until_closed
from pyav_decode import decode
from websockets.sync.client import ClientConnection, connect

OPEN = {"text": " ", "voice_settings": {"stability": 0.5, "similarity_boost": 0.8}}
BYTES_PER_MS = 32  # pcm_16000


def multi(
    server: Server, query: str = "output_format=pcm_16000", key: str | None = KEY,
    voice: str = CLIP_VOICE,
) -> ClientConnection:  # fmt: skip
    url = f"ws://127.0.0.1:{server.port}/v1/text-to-speech/{voice}/multi-stream-input?{query}"
    headers = {"xi-api-key": key} if key else {}
    return connect(url, additional_headers=headers, open_timeout=10)


def send(ws: ClientConnection, *messages: dict[str, Any]) -> None:
    for message in messages:
        ws.send(json.dumps(message))


def until_final(ws: ClientConnection, *context_ids: str, timeout: float = 30.0) -> Reply:
    """Read until every one of ``context_ids`` has sent its final message."""
    reply, pending = Reply(), set(context_ids)
    deadline = time.monotonic() + timeout
    while pending:
        message = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
        reply.messages.append(message)
        if message.get("isFinal") is True:
            pending.discard(message["contextId"])
    return reply


def by_context(reply: Reply) -> dict[str, list[dict[str, Any]]]:
    """Each context's messages in arrival order; every reply names its context both ways."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in reply.messages:
        assert message["contextId"] == message["context_id"]
        grouped[message["contextId"]].append(message)
    return grouped


def spoken(messages: list[dict[str, Any]]) -> tuple[str, int]:
    """The characters a context's audio messages report, and its audio bytes; checks that the
    final message comes once, last, without audio, and that alignment lies inside its audio."""
    assert messages[-1] == {"isFinal": True, "is_final": True, **_ids(messages[-1])}
    chars, size = "", 0
    for message in messages[:-1]:
        assert message["isFinal"] is None
        audio = base64.b64decode(message["audio"])
        size += len(audio)
        alignment = message["alignment"]
        if alignment is not None:
            assert sum(alignment["charDurationsMs"]) == round(len(audio) / BYTES_PER_MS)
            chars += "".join(alignment["chars"])
    return chars, size


def _ids(message: dict[str, Any]) -> dict[str, Any]:
    return {"contextId": message["contextId"], "context_id": message["context_id"]}


def test_two_contexts_speak_concurrently_each_its_own_text(server: Server) -> None:
    long_text = "Hello there. How are you today? The weather is fine. "
    short_text = "Bye now. "
    with multi(server) as ws:
        send(
            ws,
            {**OPEN, "context_id": "long"},
            {"text": " ", "context_id": "short"},
            {"text": long_text, "context_id": "long"},
            {"text": short_text, "context_id": "short", "flush": True},
            {"context_id": "long", "flush": True},
            {"context_id": "long", "close_context": True},  # livekit: flush, close, then wait
            {"context_id": "short", "close_context": True},
        )
        reply = until_final(ws, "long", "short")
        send(ws, {"close_socket": True})
        closing = read_until_closed(ws)
    assert closing.messages == [] and closing.close_code == 1000
    contexts = by_context(reply)
    assert set(contexts) == {"long", "short"}
    long_chars, long_bytes = spoken(contexts["long"])
    short_chars, short_bytes = spoken(contexts["short"])
    assert long_chars == long_text and short_chars == short_text  # each character once, its own
    assert long_bytes > 2 * short_bytes > 0  # three sentences against one
    # Round-robin by segment: the short context is done before the long one's last audio.
    assert reply.messages.index(contexts["short"][-1]) < reply.messages.index(contexts["long"][-2])


def test_close_context_stops_unflushed_speech_at_once_and_others_carry_on(
    server: Server,
) -> None:
    sentences = [f"Sentence number {n} is here. " for n in range(12)]
    with multi(server, "output_format=pcm_16000&auto_mode=true") as ws:
        send(ws, {**OPEN, "context_id": "talk"})
        send(ws, *({"text": s, "context_id": "talk"} for s in sentences))
        first = json.loads(ws.recv(timeout=30))  # speech has started
        assert first["contextId"] == "talk" and first["audio"]
        send(ws, {"context_id": "talk", "close_context": True})
        send(ws, {"text": "Next turn. ", "context_id": "next", "flush": True})
        send(ws, {"context_id": "next", "close_context": True})
        reply = until_final(ws, "talk", "next", timeout=15)
        send(ws, {"close_socket": True})
        assert read_until_closed(ws).close_code == 1000
    reply.messages.insert(0, first)
    contexts = by_context(reply)
    talk_chars, _ = spoken(contexts["talk"])
    # Barge-in: at most the segment that was speaking was heard of twelve, cut short.
    assert len(talk_chars) <= len(sentences[0]) < len("".join(sentences))
    assert spoken(contexts["next"])[0] == "Next turn. "
    final_at = reply.messages.index(contexts["talk"][-1])
    assert all(m["contextId"] != "talk" for m in reply.messages[final_at + 1 :])


def test_each_context_has_its_own_compressed_stream(server: Server) -> None:
    with multi(server, "output_format=opus_48000_64") as ws:
        send(
            ws,
            {**OPEN, "context_id": "a", "text": "One sentence. Two sentences. ", "flush": True},
            {"text": "Other words. ", "context_id": "b", "flush": True},
            {"context_id": "a", "close_context": True},
            {"context_id": "b", "close_context": True},
        )
        contexts = by_context(until_final(ws, "a", "b"))
    for context_id in "ab":  # interleaved on the socket, yet each an unbroken Ogg/Opus file
        audio = b"".join(base64.b64decode(m["audio"]) for m in contexts[context_id][:-1])
        decoded = decode(audio)
        assert (decoded.container, decoded.sample_rate) == ("ogg", 48000)
        assert decoded.seconds > 0.1


def test_message_without_context_id_uses_the_default_context(server: Server) -> None:
    with multi(server) as ws:
        send(ws, OPEN, {"text": "Default here. ", "flush": True}, {"close_context": True})
        reply = until_final(ws, "default")
    assert spoken(by_context(reply)["default"])[0] == "Default here. "


def test_one_context_over_the_limit_is_max_active_conversations(server: Server) -> None:
    with multi(server) as ws:
        send(ws, *({"text": " ", "context_id": f"c{n}"} for n in range(6)))
        reply = read_until_closed(ws)
    assert reply.close_code == 1008
    assert reply.messages == [
        {
            "message": "Maximum simultaneous contexts per WebSocket connection exceeded (5). "
            "Please close an existing context before opening a new one.",
            "error": "max_active_conversations",
            "code": 1008,
        }
    ]


def test_closing_context_refuses_text_and_the_socket_carries_on(server: Server) -> None:
    with multi(server) as ws:
        send(
            ws,
            {**OPEN, "context_id": "a", "text": "First words here. ", "flush": True},
            {"context_id": "a", "close_context": True},
            {"text": "Too late. ", "context_id": "a"},
            {"context_id": "a", "close_context": True},  # a second close: ignored
        )
        reply = until_final(ws, "a")
        send(ws, {"text": "Again. ", "context_id": "a", "flush": True})  # the id is free again
        send(ws, {"context_id": "a", "close_context": True})
        again = until_final(ws, "a")
        send(ws, {"close_socket": True})
        assert read_until_closed(ws).close_code == 1000
    errors = [m for m in reply.messages if "error" in m]
    assert errors == [
        {
            "message": "Context 'a' is closing; wait for its final message before reusing the id.",
            "error": "context_closing",
            "code": 1008,
            "contextId": "a",
            "context_id": "a",
        }
    ]
    finals = [m for m in reply.messages if m.get("isFinal")]
    assert len(finals) == 1 and reply.messages[-1] is finals[0]
    assert spoken([m for m in reply.messages if "error" not in m])[0] == "First words here. "
    assert spoken(again.messages)[0] == "Again. "


def test_close_socket_finishes_flushed_text_then_closes_1000(server: Server) -> None:
    with multi(server) as ws:
        send(
            ws,
            {**OPEN, "context_id": "x", "text": "Flushed text. ", "flush": True},
            {"text": "never flushed", "context_id": "y"},
            {"close_socket": True},
        )
        reply = read_until_closed(ws)
    assert reply.close_code == 1000
    contexts = by_context(reply)
    assert spoken(contexts["x"])[0] == "Flushed text. "
    assert contexts["y"] == [
        {"isFinal": True, "is_final": True, "contextId": "y", "context_id": "y"}
    ]


def test_keep_alive_then_idle_context_closes_then_idle_socket_times_out(server: Server) -> None:
    with multi(server, "output_format=pcm_16000&inactivity_timeout=1") as ws:
        send(ws, {"text": "", "context_id": "k"})  # a keep-alive creates the context
        for _ in range(4):  # 2 s of keep-alives: no final, no error
            time.sleep(0.5)
            send(ws, {"text": "", "context_id": "k"}, {"text": ""})
        t0 = time.monotonic()
        final = json.loads(ws.recv(timeout=5))
        assert final == {"isFinal": True, "is_final": True, "contextId": "k", "context_id": "k"}
        assert time.monotonic() - t0 < 2.5
        reply = read_until_closed(ws, timeout=5)  # no context left: the socket's own timeout
    assert reply.close_code == 1008
    assert reply.error is not None and reply.error["error"] == "input_timeout_exceeded"


def test_bad_input_gets_an_error_in_elevenlabs_shape(server: Server) -> None:
    with multi(server) as ws:
        send(ws, {**OPEN, "context_id": "a"})
        ws.send("{not json")
        reply = read_until_closed(ws)
    assert reply.close_code == 1008
    assert reply.error is not None and set(reply.error) == {"message", "error", "code"}
    with multi(server, voice="no-such-voice") as ws:
        send(ws, OPEN)
        reply = read_until_closed(ws)
    assert reply.error is not None and reply.error["error"] == "voice_not_found"
    with multi(server, key=None) as ws:  # the key may come in the first message instead
        send(ws, {**OPEN, "context_id": "a", "xi_api_key": KEY, "text": "Keyed. ", "flush": True})
        send(ws, {"context_id": "a", "close_context": True})
        assert spoken(until_final(ws, "a").messages)[0] == "Keyed. "
    with multi(server, key=None) as ws:
        send(ws, {"text": " ", "context_id": "a"})
        reply = read_until_closed(ws)
    assert reply.close_code == 1008 and reply.error is not None
