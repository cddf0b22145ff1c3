"""Start ``python -m xtts_balancer serve`` as a child process on sockets the caller bound.

Why: the tests, the benchmark and the demo each need a real balancer, with real worker processes,
on a free local port. Binding the socket in the caller and handing it over as ``fd://N`` leaves
no race between picking a free port and the server binding it, and the caller knows the port
before the child starts. The caller's ``XTTS_*`` variables are dropped from the child's
environment so that they cannot override the configuration written here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import yaml

__all__ = ["listen_local", "spawn_balancer"]


def listen_local(backlog: int) -> socket.socket:
    """A TCP socket listening on a free 127.0.0.1 port, inheritable so a child can serve it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def spawn_balancer(
    config: dict[str, Any],
    directory: Path,
    sockets: Sequence[socket.socket],
    args: Sequence[str],
    log: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Write ``config`` to ``directory/balancer.yaml`` and start a server with it.

    ``args`` are the command line options after ``--config`` (the ``--bind fd://N`` options
    naming ``sockets``, a log level). The sockets are passed to the child and closed here: from
    then on only the child listens on them. With ``log``, the child's stdout and stderr go there.
    """
    config_file = directory / "balancer.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTTS_")}
    command = [sys.executable, "-m", "xtts_balancer", "serve", "--config", str(config_file), *args]
    process = subprocess.Popen(
        command,
        pass_fds=[s.fileno() for s in sockets],
        stdout=log,
        stderr=None if log is None else subprocess.STDOUT,
        env=env,
    )
    for sock in sockets:
        sock.close()
    return process
