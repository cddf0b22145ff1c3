"""Command line and server start: ``xtts-balancer serve`` / ``xtts-balancer hash-key``.

Hypercorn is embedded with ``serve(app, config, shutdown_trigger=...)``. SIGTERM and SIGINT only
set an event; the trigger then drains (no new sessions, running streams get
``service.graceful_timeout_s`` to finish, the rest are closed with 1001) and returns, Hypercorn
stops, and the lifespan stops the workers. ``--bind`` overrides ``service.host/port`` and takes
anything Hypercorn does, including ``fd://N`` for a socket bound by the caller; with TLS,
``--insecure-bind`` adds plain listeners next to the TLS ones. With ``admin.port`` set, the admin
listener (``admin.host:admin.port``, or ``--admin-bind``) is one more Hypercorn bind, TLS when the
public one is; :class:`~xtts_balancer.admin.AdminGate` tells the listeners apart by local port.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from xtts_balancer.__about__ import __version__
from xtts_balancer.app import create_app
from xtts_balancer.settings import BalancerSettings, hash_api_key
from xtts_balancer.state import BalancerState
from xtts_core.errors import SettingsError
from xtts_core.logs import configure_logging, hold_logging, hypercorn_error_logger
from xtts_core.settings import load_settings

__all__ = ["cli", "hypercorn_config", "main", "serve"]

logger = logging.getLogger(__name__)


def hypercorn_config(
    settings: BalancerSettings, binds: Sequence[str] = (), insecure_binds: Sequence[str] = (),
    admin_binds: Sequence[str] = (),
) -> Config:  # fmt: skip
    """Hypercorn's settings from ours (every websocket-relevant value set on purpose).

    With TLS configured, ``binds`` serve https/wss and ``insecure_binds`` plain http/ws.
    ``admin_binds`` replace ``admin.host:admin.port`` (used only when ``admin.port`` is set).
    """
    service, admin = settings.service, settings.admin
    config = Config()
    config.bind = list(binds) or [f"{service.host}:{service.port}"]
    if admin.port is not None:
        config.bind += list(admin_binds) or [f"{admin.host}:{admin.port}"]
    config.insecure_bind = list(insecure_binds)
    config.graceful_timeout = 2.0  # our own drain has already run when Hypercorn's starts
    # Above our own limit, so an oversized frame gets our JSON error rather than a bare 1009.
    config.websocket_max_message_size = max(4 * settings.limits.max_message_bytes, 1 << 20)
    config.websocket_ping_interval = service.websocket_ping_interval_s
    config.accesslog = None
    config.errorlog = hypercorn_error_logger()  # through our handler, once
    if service.tls_certfile is not None and service.tls_keyfile is not None:
        config.certfile = str(service.tls_certfile)
        config.keyfile = str(service.tls_keyfile)
    return config


async def serve(
    settings: BalancerSettings, shutdown: asyncio.Event, binds: Sequence[str] = (),
    insecure_binds: Sequence[str] = (), admin_binds: Sequence[str] = (),
) -> None:  # fmt: skip
    """Run the balancer until ``shutdown`` is set, then drain and stop."""
    app = create_app(settings)

    async def trigger() -> None:
        await shutdown.wait()
        state: BalancerState = app.state.balancer
        await state.drain()

    config = hypercorn_config(settings, binds, insecure_binds, admin_binds)
    await hypercorn_serve(cast(Any, app), config, shutdown_trigger=trigger)


async def _serve_until_signalled(
    settings: BalancerSettings, binds: Sequence[str], insecure_binds: Sequence[str],
    admin_binds: Sequence[str],
) -> None:  # fmt: skip
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.set)
    await serve(settings, shutdown, binds, insecure_binds, admin_binds)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xtts-balancer`` script and ``python -m xtts_balancer``."""
    parser = argparse.ArgumentParser(prog="xtts-balancer", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"xtts-balancer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the server")
    run.add_argument("--config", type=Path, help="YAML settings (default: $XTTS_CONFIG_FILE)")
    run.add_argument(
        "--bind", action="append", default=[], help="host:port, unix:PATH or fd://N (repeatable)"
    )
    run.add_argument(
        "--insecure-bind", action="append", default=[],
        help="plain http/ws listener next to the TLS ones (repeatable)",
    )  # fmt: skip
    run.add_argument(
        "--admin-bind", action="append", default=[],
        help="admin listener instead of admin.host:admin.port, e.g. fd://N (needs admin.port)",
    )  # fmt: skip
    run.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    key = commands.add_parser("hash-key", help="print the auth.api_key_hashes entry of a key")
    key.add_argument("key")
    args = parser.parse_args(argv)
    if args.command == "hash-key":
        print(hash_api_key(args.key))
        return 0
    level = args.log_level.upper()
    hold_logging(level)  # until service.log_format is known
    try:
        settings = load_settings(BalancerSettings, args.config)
    except SettingsError as exc:
        configure_logging(level, "text")
        print(f"xtts-balancer: {exc}", file=sys.stderr)
        return 2
    configure_logging(level, settings.service.log_format)
    if args.admin_bind and settings.admin.port is None:
        print(
            "xtts-balancer: --admin-bind needs admin.port (the port it listens on)", file=sys.stderr
        )
        return 2
    binds = (args.bind, args.insecure_bind, args.admin_bind)
    asyncio.run(_serve_until_signalled(settings, *binds))
    return 0


def cli() -> None:
    """Console-script wrapper: exit with :func:`main`'s status."""
    sys.exit(main())
