"""A worker that can serve no more is replaced: a hung idle worker misses its ping and is killed;
a backend failure of no single job's making (a failed batched step) ends the worker process, while
a job's own failure stays that job's."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from balancer_server import CLIP_VOICE, base_config, start_server
from numpy.typing import NDArray

from xtts_balancer.backends.base import BackendFailedError, Synthesis
from xtts_balancer.backends.xtts import XttsBackend
from xtts_balancer.worker import main as worker_main
from xtts_balancer.worker.ipc import Job, JobDone, JobFailed, WorkerConfig


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _job(job_id: int, text: str = "Hello there.") -> Job:
    return Job(
        job_id=job_id, text=text, language="en", voice_id="default", speed=1.0, seed=1,
        max_new_codes=8, first_chunk_codes=2, chunk_codes=4, denoise=False,
    )  # fmt: skip


def test_a_hung_idle_worker_misses_its_ping_and_is_replaced(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    voices.mkdir()
    soundfile.write(voices / f"{CLIP_VOICE}.wav", np.zeros(2205, np.float32), 22050)
    config = base_config(Path(), voices)
    config["model"] = {"backend": "tone", "voices_dir": str(voices)}
    config["workers"].update(ping_interval_s=0.2, ping_timeout_s=0.5)
    srv = start_server(tmp_path, config)
    try:
        srv.wait_ready()
        time.sleep(1.0)  # answered pings keep a healthy worker alive
        (worker,) = srv.workers()
        assert worker["restarts"] == 0 and worker["state"] == "ready"
        os.kill(worker["pid"], signal.SIGSTOP)  # alive, but answers nothing
        wait_for(lambda: srv.workers()[0]["restarts"] == 1)
        wait_for(lambda: srv.workers()[0]["state"] == "ready")
        assert srv.workers()[0]["pid"] != worker["pid"]
        assert "no answer to a ping" in srv.logs()
    finally:
        srv.stop()


class _Failing(Synthesis):
    """A synthesis that fails with ``error`` after one chunk."""

    def __init__(self, error: Exception) -> None:
        self.codes = 0
        self._error = error

    def __iter__(self) -> Iterator[NDArray[np.float32]]:
        yield np.zeros(10, np.float32)
        raise self._error

    def cancel(self) -> None:
        pass


class _Backend:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def submit(self, job: Job) -> Synthesis:
        return _Failing(self.error)


def _run_one(error: Exception) -> tuple[list[Any], list[BaseException]]:
    """One job on a ``_JobRunner`` whose synthesis fails with ``error``: what the worker sent,
    and what reached its fatal-error hook."""
    front, child = multiprocessing.Pipe()
    fatal: list[BaseException] = []
    runner = worker_main._JobRunner(_Backend(error), worker_main._Sender(child), fatal.append)  # type: ignore[arg-type]
    runner.submit(_job(7))
    sent = []
    while not sent or not isinstance(sent[-1], JobFailed | JobDone):
        assert front.poll(10)
        sent.append(front.recv())
    return sent, fatal


def test_a_jobs_own_failure_fails_only_that_job() -> None:
    sent, fatal = _run_one(ValueError("bad input"))
    assert isinstance(sent[-1], JobFailed) and sent[-1].error == "internal_error"
    assert fatal == []


def test_a_backend_failure_fails_the_job_and_ends_the_worker() -> None:
    failure = BackendFailedError("batched step failed")
    sent, fatal = _run_one(failure)
    assert isinstance(sent[-1], JobFailed) and sent[-1].error == "worker_failed"
    wait_for(lambda: fatal == [failure])  # the hook runs after the job's JobFailed is sent


def test_a_failed_batched_step_fails_the_xtts_backend_as_a_whole(
    model_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir, voices = model_files
    config = WorkerConfig(
        "w", model_dir, "cpu", "fp32", voices, None, tmp_path, "en", 2, 1, "Hi.", 20,
        cuda_graphs=False,
    )  # fmt: skip
    backend = XttsBackend.load(config)
    try:
        assert list(backend.submit(_job(1)))  # healthy: audio comes

        def broken_step() -> Any:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

        monkeypatch.setattr(backend._scheduler.decoder, "step", broken_step)  # type: ignore[attr-defined]
        with pytest.raises(BackendFailedError, match="illegal memory access"):
            list(backend.submit(_job(2)))
        with pytest.raises(BackendFailedError):  # the scheduler serves no more
            backend.submit(_job(3))
    finally:
        backend.close()
