"""A worker that cannot start: restarted with backoff up to the limit, then left down, while the
server stays up, reports not ready and refuses sessions with 1013."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from balancer_server import base_config, read_until_closed, start_server


def test_a_worker_that_cannot_start_is_retried_then_left_down(tmp_path: Path) -> None:
    empty_model = tmp_path / "empty-model"  # a folder, but no checkpoint in it
    empty_model.mkdir()
    (tmp_path / "server").mkdir()
    config = base_config(empty_model, tmp_path, auth={"enabled": False})
    config["model"]["voices_dir"] = None
    config["workers"].update(max_restarts=1, restart_backoff_s=0.1)
    config["queue"] = {"max_queue": 1, "queue_timeout_s": 0.5}
    srv = start_server(tmp_path / "server", config)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                (worker,) = srv.workers()
            except httpx.HTTPError:  # not listening yet
                worker = {}
            if worker.get("state") == "dead" and worker.get("restarts") == 1:
                break
            assert time.monotonic() < deadline, srv.logs()
            time.sleep(0.2)
        assert "used its 1 restarts; leaving it down" in srv.logs()
        assert srv.logs().count("failed to start") == 2
        assert srv.get("/health").status_code == 200
        assert srv.get("/ready").status_code == 503
        with srv.connect(key=None) as ws:  # the first utterance finds no worker slot
            ws.send(json.dumps({"text": " "}))
            ws.send(json.dumps({"text": "Hi. ", "flush": True}))
            reply = read_until_closed(ws, timeout=10)
        assert reply.close_code == 1013
        assert reply.error is not None and reply.error["error"] == "too_many_concurrent_requests"
    finally:
        srv.stop()
