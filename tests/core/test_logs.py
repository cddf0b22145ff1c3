"""xtts_core.logs: JSON lines with the record's extra fields, and records held until the
format is known."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from xtts_core import logs


@pytest.fixture(autouse=True)
def _restore_root() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_json_line_carries_extra_fields_and_the_traceback() -> None:
    formatter = logs.JsonLinesFormatter({"worker": "worker-0"})
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x.y", logging.ERROR, __file__, 1, "hi %s", ("there",), None)
        record.exc_info = sys.exc_info()
    record.session_id = "s-1"
    line = json.loads(formatter.format(record))
    assert line["msg"] == "hi there" and line["logger"] == "x.y" and line["level"] == "ERROR"
    assert line["worker"] == "worker-0" and line["session_id"] == "s-1"
    assert "ValueError: boom" in line["exc"] and line["ts"].endswith("+00:00")


def test_held_records_come_out_in_the_format_chosen_later(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.hold_logging(logging.INFO)
    logging.getLogger("early").info("before the settings")
    assert capsys.readouterr().err == ""
    logs.configure_logging(logging.INFO, "json", "%(message)s")
    logging.getLogger("late").info("after")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["msg"]) for line in lines] == [
        ("early", "before the settings"), ("late", "after"),
    ]  # fmt: skip


def test_text_format_is_the_given_format(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging(logging.INFO, "text", "%(levelname)s %(name)s: %(message)s")
    logging.getLogger("svc").warning("plain")
    assert capsys.readouterr().err == "WARNING svc: plain\n"


def test_text_lines_carry_extra_fields_as_a_key_value_tail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure_logging(logging.INFO, "text")
    log = logging.getLogger("svc")
    log.info("done", extra={"session_id": "ab12", "voice": "two words", "error": None, "n": 3})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed", extra={"session_id": "cd34"})
    first, second, *traceback = capsys.readouterr().err.splitlines()
    assert first.endswith(' INFO svc: done session_id=ab12 voice="two words" error=- n=3')
    assert second.endswith(" ERROR svc: failed session_id=cd34")  # not asctime, not below
    assert traceback[-1] == "ValueError: boom"


def test_json_lines_keep_a_missing_field_as_null() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "done", None, None)
    record.error = None
    assert json.loads(logs.JsonLinesFormatter().format(record))["error"] is None


def test_the_shipped_dict_config_keeps_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    import logging.config
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "configs" / "logging.json"
    logging.config.dictConfig(json.loads(shipped.read_text()))
    logging.getLogger("xtts_broker.session").info("session finished", extra={"session_id": "ab"})
    assert capsys.readouterr().err.endswith(
        " xtts_broker.session: session finished session_id=ab\n"
    )


def test_httpx_request_lines_only_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging(logging.INFO, "text")
    logging.getLogger("httpx").info("HTTP Request: POST /broker/heartbeat")
    assert capsys.readouterr().err == ""
    logs.configure_logging(logging.DEBUG, "text")
    logging.getLogger("httpx").info("HTTP Request: POST /broker/heartbeat")
    assert "HTTP Request" in capsys.readouterr().err
