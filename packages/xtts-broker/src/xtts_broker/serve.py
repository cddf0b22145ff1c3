"""Running the broker: Hypercorn embedded with a drain on SIGTERM/SIGINT, and the command line.

``xtts-broker`` (or ``python -m xtts_broker``) reads the settings from ``--config`` or
``XTTS_BROKER_CONFIG_FILE`` and serves until SIGTERM/SIGINT. Shutdown: stop taking streams
(``/ready`` fails, new clients get 1001), let open streams run up to
``service.graceful_timeout_s``, close the rest with 1001, then stop Hypercorn. Works from any
directory: every path is taken from the settings.

``xtts-broker hash-key`` reads API keys from stdin, one a line, and prints the ``sha256:…`` form
for ``auth.api_key_hashes`` (stdin, so keys stay out of shell history).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import logging.config
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from xtts_broker.__about__ import __version__
from xtts_broker.app import create_app
from xtts_broker.settings import BrokerSettings, load_broker_settings
from xtts_broker.state import BrokerState
from xtts_core.cluster import hash_api_key
from xtts_core.errors import SettingsError
from xtts_core.logs import LogFormat, configure_logging, hold_logging, hypercorn_error_logger

__all__ = ["hypercorn_config", "main", "run_broker"]

logger = logging.getLogger(__name__)


def hypercorn_config(settings: BrokerSettings, sock: socket.socket | None = None) -> Config:
    """Hypercorn's config from ours; ``sock`` (bound, not yet listening) replaces
    ``service.host:port`` and is handed over: Hypercorn owns and closes its file descriptor."""
    config = Config()
    service = settings.service
    if sock is not None:
        config.bind = [f"fd://{sock.detach()}"]
    else:
        host = f"[{service.host}]" if ":" in service.host else service.host
        config.bind = [f"{host}:{service.port}"]
    # Our drain already waited for streams; Hypercorn only needs to finish the last writes.
    config.graceful_timeout = 1.0
    config.websocket_max_message_size = service.websocket_max_message_size
    config.websocket_ping_interval = service.websocket_ping_interval_s
    config.accesslog = None
    config.errorlog = hypercorn_error_logger()  # through our handler, once
    if service.tls_certfile is not None and service.tls_keyfile is not None:
        config.certfile = str(service.tls_certfile)
        config.keyfile = str(service.tls_keyfile)
    return config


_LoopExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


def _tls_close_filter(previous: _LoopExceptionHandler | None) -> _LoopExceptionHandler:
    """A loop exception handler that drops one known-harmless TLS error, passing on the rest.

    Hypercorn closes a TLS connection right after it sends a websocket close frame; when the
    client's close frame arrives after that, ``wait_closed`` raises
    ``APPLICATION_DATA_AFTER_CLOSE_NOTIFY`` out of Hypercorn's connection task
    (pgjones/hypercorn#261). The stream had already ended cleanly, so an error-level traceback
    for it would only alarm operators; it is logged at debug level instead.
    """

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, ssl.SSLError) and exc.reason == "APPLICATION_DATA_AFTER_CLOSE_NOTIFY":
            logger.debug("client sent data after the TLS close; connection dropped: %s", exc)
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    return handle


async def run_broker(
    settings: BrokerSettings,
    shutdown: asyncio.Event,
    *,
    sock: socket.socket | None = None,
) -> None:
    """Serve until ``shutdown`` is set, then drain (see the module docstring) and return.

    Args:
        settings: the broker's settings.
        shutdown: set it to stop (``main`` sets it on SIGTERM/SIGINT).
        sock: a bound listening socket to serve on (tests bind port 0); Hypercorn takes it over.
    """
    app = create_app(settings)

    async def trigger() -> None:
        await shutdown.wait()
        state: BrokerState = app.state.broker
        logger.info(
            "shutting down: draining streams for up to %.1f s", settings.service.graceful_timeout_s
        )
        await state.drain(settings.service.graceful_timeout_s)

    config = hypercorn_config(settings, sock)
    logger.info(
        "xtts-broker %s on %s (%s), strategy %s",
        __version__,
        config.bind[0],
        "https/wss" if settings.service.tls else "http/ws",
        settings.service.strategy,
    )
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    if settings.service.tls:
        loop.set_exception_handler(_tls_close_filter(previous))
    try:
        await serve(app, config, shutdown_trigger=trigger)  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the last connection tasks' done callbacks report here
    except ssl.SSLError as exc:
        if not shutdown.is_set():
            raise
        # Hypercorn gathers its connection tasks at shutdown and re-raises the first failure:
        # a TLS peer that answers the close with an alert would otherwise fail a shutdown
        # whose drain has already finished.
        logger.info("a TLS connection closed uncleanly during shutdown: %s", exc)
    finally:
        loop.set_exception_handler(previous)


def _configure_logging(path: Path | None, log_format: LogFormat = "text") -> None:
    """``--log-config`` if given, else ``service.log_format`` (:mod:`xtts_core.logs`: the
    balancer's formats)."""
    if path is None:
        configure_logging(logging.INFO, log_format)
        return
    try:
        logging.config.dictConfig(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"xtts-broker: cannot use log config {path}: {exc}") from exc


async def _serve_until_signalled(settings: BrokerSettings) -> None:
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.set)
    await run_broker(settings, shutdown)


def _hash_keys() -> int:
    lines = [line.strip() for line in sys.stdin if line.strip()]
    if not lines:
        print("xtts-broker hash-key: no key on stdin", file=sys.stderr)
        return 2
    for key in lines:
        print(hash_api_key(key))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``xtts-broker``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="xtts-broker", description="One front door for many xtts balancers."
    )
    parser.add_argument("--version", action="version", version=f"xtts-broker {__version__}")
    parser.add_argument(
        "--config", type=Path, help="YAML settings (default: $XTTS_BROKER_CONFIG_FILE)"
    )
    parser.add_argument("--log-config", type=Path, help="logging dictConfig as JSON")
    parser.add_argument(
        "command",
        nargs="?",
        choices=["serve", "hash-key"],
        default="serve",
        help="serve (default) or hash-key: print sha256 hashes of API keys read from stdin",
    )
    args = parser.parse_args(argv)
    if args.command == "hash-key":
        return _hash_keys()
    if args.log_config is None:
        hold_logging(logging.INFO)  # until service.log_format is known
    else:
        _configure_logging(args.log_config)
    try:
        settings = load_broker_settings(args.config)
    except SettingsError as exc:
        if args.log_config is None:
            _configure_logging(None)
        print(f"xtts-broker: {exc}", file=sys.stderr)
        return 2
    if args.log_config is None:
        _configure_logging(None, settings.service.log_format)
    asyncio.run(_serve_until_signalled(settings))
    return 0
