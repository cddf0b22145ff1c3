"""Fixtures for the balancer tests: the tiny checkpoint, a TLS CA and one shared server.

The helpers live in ``balancer_server.py`` (a unique module name, so test modules can import
them whatever other conftest files the run loads).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from balancer_server import (
    ADMIN_KEY,
    Server,
    base_config,
    coqui_config,
    start_server,
    write_model_files,
)

from xtts_balancer.settings import hash_api_key


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny random checkpoint and a voices_dir with one reference clip."""
    return write_model_files(tmp_path_factory)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server(
    model_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA
) -> Iterator[Server]:
    """Two workers, TLS, the limits of :func:`base_config`; shared by the whole session."""
    model_dir, voices = model_files
    config = base_config(model_dir, voices)
    config["service"]["instances"] = 2
    srv = start_server(tmp_path_factory.mktemp("server"), config, tls=ca)
    try:
        srv.wait_ready(workers=2)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def batched_server(
    model_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """ONE worker with two batched slots held by open sockets, an admin listener (``admin_port``) and ``ADMIN_KEY``."""
    model_dir, voices = model_files
    config = base_config(model_dir, voices, admin={"key_hashes": [hash_api_key(ADMIN_KEY)]})
    config["workers"]["slots_per_worker"] = 2
    config["queue"]["slot_lease"] = "session"  # an open socket holds one of the two slots
    config["model"]["max_new_codes"] = 24  # long enough to still be decoding when a client leaves
    srv = start_server(tmp_path_factory.mktemp("batched"), config, admin=True)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def coqui_server(
    model_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One worker and no API keys, as coqui's xtts-streaming-server runs (its clients send
    none); for the coqui API tests."""
    srv = start_server(tmp_path_factory.mktemp("coqui"), coqui_config(*model_files))
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    for name in ("server", "batched_server", "coqui_server"):
        if report.failed and name in getattr(item, "fixturenames", ()):
            srv = item.funcargs.get(name)  # type: ignore[attr-defined]
            if isinstance(srv, Server):
                report.sections.append(("balancer log", srv.logs()))
    return report
