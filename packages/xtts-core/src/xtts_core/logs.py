"""Log output of the services: human-readable text, or one JSON object per line.

A fleet's log pipeline (Loki, Elasticsearch) reads JSON lines without a parser per service;
a person at a terminal reads text. Both services and the balancer's workers call
:func:`configure_logging` with their ``service.log_format``, so every process of a deployment
writes one format. Hypercorn's own logger is routed through the same root handler (see
:func:`hypercorn_error_logger`) instead of the handler Hypercorn would add, which printed each
of its lines twice.

The format is a setting, and loading the settings logs too: :func:`hold_logging` keeps the
records until :func:`configure_logging` knows the format and writes them out in it.

The invariant: in ``json`` format every line written to stderr is one JSON object with at
least ``ts``, ``level``, ``logger`` and ``msg``; fields passed as ``extra=`` (``session_id``,
``worker``) become keys of their own.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Literal

__all__ = [
    "JsonLinesFormatter",
    "LogFormat",
    "configure_logging",
    "hold_logging",
    "hypercorn_error_logger",
]

LogFormat = Literal["text", "json"]

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, pid, message, the
    record's ``extra`` fields and, for an exception, its traceback as one string."""

    def __init__(self, fields: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            **self._fields,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class _Held(logging.Handler):
    """Records kept until the format is known."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def hold_logging(level: int | str) -> None:
    """Keep every record from now on until :func:`configure_logging` writes them."""
    logging.basicConfig(level=level, handlers=[_Held()], force=True)


def configure_logging(
    level: int | str, log_format: LogFormat, text_format: str, **fields: Any
) -> None:
    """Send every log record to stderr in ``log_format``, replacing earlier configuration
    (records :func:`hold_logging` kept are written first).

    ``text_format`` is the ``%``-style format of the text form; ``fields`` are constant keys
    of each JSON line (a worker's name, say).
    """
    held = [r for h in logging.getLogger().handlers if isinstance(h, _Held) for r in h.records]
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLinesFormatter(fields))
    else:
        handler.setFormatter(logging.Formatter(text_format))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for record in held:
        handler.handle(record)


def hypercorn_error_logger() -> logging.Logger:
    """Hypercorn's error logger, for ``Config.errorlog``: given a Logger, Hypercorn adds no
    handler of its own, so its lines go once through the root handler, in our format."""
    return logging.getLogger("hypercorn.error")
