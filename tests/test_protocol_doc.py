"""docs/protocol.md's table of codes is the protocol's vocabulary: every code, its HTTP status."""

from __future__ import annotations

import re
from pathlib import Path

from xtts_core.protocol import HTTP_STATUS, ErrorCode

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
_ROW = re.compile(r"^\| `([a-z_]+)` \| (\d{3}|—) \|", re.MULTILINE)


def test_the_documented_codes_are_the_protocols() -> None:
    documented = {code: status for code, status in _ROW.findall(DOC.read_text(encoding="utf-8"))}
    assert set(documented) == {code.value for code in ErrorCode}
    for code in ErrorCode:
        status = HTTP_STATUS.get(code)
        assert documented[code.value] == (str(status) if status else "—"), code.value
