"""Batched workers: sessions on ONE worker with two slots share its decode steps.

The ``batched_server`` (conftest.py) has a single worker with ``slots_per_worker: 2``, so two
sessions can only run at the same time by sharing that worker's batch scheduler. A seeded request
must sound the same batched as alone (the batch changes latents by float rounding only), and a
client that goes away mid-stream must free its stream slot in the worker, not only its lease in
the front process.
"""

from __future__ import annotations

import json
import threading
from contextlib import ExitStack

import httpx
import numpy as np
from balancer_server import ADMIN_KEY, Reply, Server, converse
from test_capacity import BOS, EOS, idle, wait_for

TEXTS = ("Hello there, my friend. ", "Numbers are fun to read. ")
#: Largest int16 difference allowed between batched and solo audio: float rounding only
#: (measured: 0-1 LSB; a different code anywhere would change whole chunks by far more).
TOLERANCE = 8


def seeded(server: Server, seed: int) -> str:
    return server.ws_url().split("?", 1)[1] + f"&seed={seed}"


def freed(server: Server) -> int:
    """How many cancelled jobs the worker has logged as gone from its batch."""
    return server.log.read_text(errors="replace").count("its stream slot is free")


def samples(reply: Reply) -> np.ndarray:
    assert reply.close_code == 1000, reply
    assert reply.messages[-1]["isFinal"] is True
    return np.frombuffer(reply.audio_bytes, dtype=np.int16)


def test_two_sessions_on_one_worker_sound_as_they_do_alone(batched_server: Server) -> None:
    server = batched_server
    wait_for(lambda: idle(server) == 2)
    alone = []
    for seed, text in enumerate(TEXTS):
        with server.connect(query=seeded(server, seed)) as ws:
            alone.append(samples(converse(ws, BOS, {"text": text}, EOS)))
    replies: list[Reply | None] = [None, None]
    with ExitStack() as stack:
        sockets = [
            stack.enter_context(server.connect(query=seeded(server, seed)))
            for seed in range(len(TEXTS))
        ]
        for ws in sockets:
            ws.send(json.dumps(BOS))
        wait_for(lambda: idle(server) == 0)  # both hold a slot of the one worker
        workers = httpx.get(
            f"http://127.0.0.1:{server.admin_port}/workers",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ).json()["workers"]
        assert [w["busy_slots"] for w in workers] == [2]

        def talk(i: int) -> None:
            replies[i] = converse(sockets[i], {"text": TEXTS[i]}, EOS)

        threads = [threading.Thread(target=talk, args=(i,)) for i in range(len(TEXTS))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    for reply, solo in zip(replies, alone, strict=True):
        assert reply is not None
        batched = samples(reply)
        assert solo.size > 0 and batched.size == solo.size  # the same codes, so as much audio
        diff = np.abs(batched.astype(np.int32) - solo.astype(np.int32)).max()
        assert diff <= TOLERANCE, diff
    wait_for(lambda: idle(server) == 2)


def test_a_client_gone_mid_stream_frees_its_stream_slot_in_the_worker(
    batched_server: Server,
) -> None:
    server = batched_server
    wait_for(lambda: idle(server) == 2)
    cancelled_before = freed(server)
    with server.connect(query=seeded(server, 0)) as ws:  # this seed runs to max_new_codes
        ws.send(json.dumps(BOS))
        ws.send(json.dumps({"text": TEXTS[0], "flush": True}))
        assert json.loads(ws.recv(timeout=30))["audio"]
    wait_for(lambda: freed(server) > cancelled_before, timeout=5)
    wait_for(lambda: idle(server) == 2, timeout=2)
    with server.connect() as ws:  # the worker serves the next session as usual
        assert samples(converse(ws, BOS, {"text": "Still here. "}, EOS)).size > 0
