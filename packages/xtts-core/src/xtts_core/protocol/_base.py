"""Shared internals: the base of every protocol model and the parsers' JSON and error helpers.

Every model ignores unknown keys (§1.3) and is frozen. The helpers turn a raw frame into a JSON
object, or a pydantic error into one readable line, raising
:class:`~xtts_core.errors.ProtocolError`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from xtts_core.protocol.codes import invalid_message


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )


# --- JSON and error helpers -----------------------------------------------------------------------

_JSON_TYPES: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _describe(exc: ValidationError, limit: int = 3) -> str:
    """One line for a pydantic error: ``loc: reason`` for the first ``limit`` problems."""
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:limit]:
        loc = ".".join(str(part) for part in err["loc"])
        kind = err["type"]
        value = err.get("input")
        if kind == "missing":
            reason = "field required"
        elif kind == "value_error":
            reason = err["msg"].removeprefix("Value error, ")
        elif kind == "output_format":  # its message names the parameter already
            loc, reason = "", err["msg"]
        elif kind.endswith("_type"):
            reason = f"{err['msg']}, got {_json_type(value)}"
        elif isinstance(value, str | int | float) and (
            kind.endswith("_parsing") or kind in ("literal_error", "enum")
        ):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            reason = f"{err['msg']}, got {shown}"
        else:
            reason = err["msg"]
        parts.append(f"{loc}: {reason}" if loc else reason)
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return " ".join("; ".join(parts).split())


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_object(raw: str | bytes) -> dict[str, Any]:
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise invalid_message("message is not valid UTF-8") from None
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise invalid_message(
            f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise invalid_message(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise invalid_message(f"message must be a JSON object, got {_json_type(obj)}")
    return obj
