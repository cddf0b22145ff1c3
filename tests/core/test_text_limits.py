"""Per-language character limits (xtts-reference.md §1.6)."""

from __future__ import annotations

import pytest

from xtts_core.text import limits
from xtts_core.text.limits import CHAR_LIMITS, DEFAULT_CHAR_LIMIT, base_language, char_limit

REFERENCE = {
    "en": 250, "de": 253, "fr": 273, "es": 239, "it": 213, "pt": 203, "pl": 224, "zh": 82,
    "ar": 166, "cs": 186, "ru": 182, "nl": 251, "tr": 226, "ja": 71, "hu": 224, "ko": 95,
    "hi": 150,
}  # fmt: skip


def test_table_matches_the_reference() -> None:
    assert dict(CHAR_LIMITS) == REFERENCE
    assert DEFAULT_CHAR_LIMIT == 250


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CHAR_LIMITS["en"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", 250), ("en-US", 250), ("EN_gb", 250), ("zh-cn", 82), ("zh", 82), ("ja", 71),
     (" pt-BR ", 203), ("hi", 150), ("xx", DEFAULT_CHAR_LIMIT), ("", DEFAULT_CHAR_LIMIT)],
)  # fmt: skip
def test_char_limit(language: str, expected: int) -> None:
    assert char_limit(language) == expected


def test_base_language() -> None:
    assert base_language("zh-CN") == "zh"
    assert base_language("en_US") == "en"
    assert base_language("ko") == "ko"


def test_all() -> None:
    assert sorted(limits.__all__) == [
        "CHAR_LIMITS",
        "DEFAULT_CHAR_LIMIT",
        "base_language",
        "char_limit",
    ]
