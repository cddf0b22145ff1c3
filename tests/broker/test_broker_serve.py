"""``python -m xtts_broker`` as a process: starts from any directory, stops cleanly on SIGTERM;
and the filter that keeps a known Hypercorn TLS close race out of the error log."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from broker_servers import SECRET, make_settings

import xtts_broker.serve as broker_serve
from xtts_broker.serve import _tls_close_filter, run_broker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.timeout(60)
def test_module_entry_point_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "broker.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "service": {"host": "127.0.0.1", "port": port, "graceful_timeout_s": 0.5},
                "cluster": {"secret": SECRET},
                "auth": {"enabled": False},
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "xtts_broker", "--config", str(config)],
        cwd=tmp_path,  # the original only started from inside its own folder
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(300):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[0]
                time.sleep(0.05)
        else:
            pytest.fail("the broker did not start")
        assert health.json()["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert "shutting down" in output


def test_tls_close_filter_drops_only_the_close_notify_race() -> None:
    seen: list[BaseException] = []

    def previous(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        seen.append(context["exception"])

    race = ssl.SSLError(1, "application data after close notify")
    race.reason = "APPLICATION_DATA_AFTER_CLOSE_NOTIFY"
    other_tls = ssl.SSLError(1, "certificate verify failed")
    other_tls.reason = "CERTIFICATE_VERIFY_FAILED"
    crash = RuntimeError("a real bug")
    handler = _tls_close_filter(previous)
    loop = asyncio.new_event_loop()
    try:
        for exc in (race, other_tls, crash):
            handler(
                loop, {"message": "Unhandled exception in client_connected_cb", "exception": exc}
            )
    finally:
        loop.close()
    assert seen == [other_tls, crash]


def test_a_tls_error_while_connections_close_does_not_fail_the_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hypercorn re-raises the first connection task's failure when it stops serving; a TLS
    peer answering the close with an alert must not turn a drained shutdown into a crash, while
    the same error before any shutdown is still raised."""
    alert = ssl.SSLError(1, "tlsv1 alert internal error")

    async def failing_serve(app: Any, config: Any, shutdown_trigger: Any) -> None:
        raise alert

    monkeypatch.setattr(broker_serve, "serve", failing_serve)

    async def run(shutting_down: bool) -> None:
        shutdown = asyncio.Event()
        if shutting_down:
            shutdown.set()
        await run_broker(make_settings(), shutdown)

    asyncio.run(run(shutting_down=True))  # returns: the drain was done
    with pytest.raises(ssl.SSLError):
        asyncio.run(run(shutting_down=False))
