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
least ``ts``, ``level``, ``logger`` and ``msg``; fields passed as ``extra=`` (the per-session
summary lines: ``session_id``, ``voice``, ...) become keys of their own. In ``text`` format
(:data:`TEXT_FORMAT`, the same for every service) the same fields follow the message as a
``key=value`` tail, so both formats carry the same facts.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Literal

__all__ = [
    "TEXT_FORMAT",
    "JsonLinesFormatter",
    "LogFormat",
    "TextFormatter",
    "configure_logging",
    "hold_logging",
    "hypercorn_error_logger",
]

LogFormat = Literal["text", "json"]

#: The ``text`` form of every service's log line (a worker adds its name).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Attributes every LogRecord has, or gets from a formatter; anything else came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    """The fields ``extra=`` put on ``record``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


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
        for key, value in _extra(record).items():
            plain = value is None or isinstance(value, (str, int, float, bool))
            line[key] = value if plain else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``%``-style text, then the record's ``extra`` fields as ``key=value`` (a value with a
    space, a quote or an ``=`` in JSON quotes, a missing one as ``-``)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        tail = " ".join(f"{key}={_text_value(value)}" for key, value in _extra(record).items())
        if not tail:
            return text
        head, newline, rest = text.partition("\n")  # a traceback stays below the line
        return f"{head} {tail}{newline}{rest}"


def _text_value(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


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
    level: int | str, log_format: LogFormat, text_format: str = TEXT_FORMAT, **fields: Any
) -> None:
    """Send every log record to stderr in ``log_format``, replacing earlier configuration
    (records :func:`hold_logging` kept are written first).

    ``text_format`` is the ``%``-style format of the text form; ``fields`` are constant keys
    of each JSON line (a worker's name, say). ``httpx``'s per-request lines are written only at
    level ``DEBUG``.
    """
    held = [r for h in logging.getLogger().handlers if isinstance(h, _Held) for r in h.records]
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLinesFormatter(fields))
    else:
        handler.setFormatter(TextFormatter(text_format))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx logs every request at INFO: each heartbeat and relayed request would bury the
    # one line per session among its own (at DEBUG they are wanted).
    quiet = logging.getLogger().level > logging.DEBUG
    logging.getLogger("httpx").setLevel(logging.WARNING if quiet else logging.NOTSET)
    for record in held:
        handler.handle(record)


def hypercorn_error_logger() -> logging.Logger:
    """Hypercorn's error logger, for ``Config.errorlog``: given a Logger, Hypercorn adds no
    handler of its own, so its lines go once through the root handler, in our format."""
    return logging.getLogger("hypercorn.error")
