"""Per-language character limits of XTTS-v2 (the reference's ``char_limits``).

The reference uses these numbers for two things: a warning when one ``encode`` call gets longer
text, and the length that ``split_sentence`` packs sentences up to. They are what the released
model was trained to speak in one go (the GPT's text position table holds 402 tokens, and the
limits keep well under it for each language's tokens-per-character ratio), so the splitters in
:mod:`xtts_core.text.split` use them as the default segment length.

Pure Python and torch-free: the broker and the incremental splitter import it.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = ["CHAR_LIMITS", "DEFAULT_CHAR_LIMIT", "base_language", "char_limit"]

DEFAULT_CHAR_LIMIT: Final = 250
"""Limit for a language missing from :data:`CHAR_LIMITS` (the reference's ``.get(lang, 250)``)."""

CHAR_LIMITS: Final = MappingProxyType(
    {
        "en": 250,
        "de": 253,
        "fr": 273,
        "es": 239,
        "it": 213,
        "pt": 203,
        "pl": 224,
        "zh": 82,
        "ar": 166,
        "cs": 186,
        "ru": 182,
        "nl": 251,
        "tr": 226,
        "ja": 71,
        "hu": 224,
        "ko": 95,
        "hi": 150,
    }
)
"""Characters per segment, keyed by base language code (``zh``, not ``zh-cn``)."""


def base_language(language: str) -> str:
    """Drop region suffixes and case: ``en-US`` -> ``en``, ``zh-cn``/``zh_CN`` -> ``zh``.

    Same rule as the reference's ``lang.split("-")[0]``; the one definition, shared by the
    tokenizer and the splitters (it lives here because this module needs no extra).
    """
    return language.strip().lower().replace("_", "-").split("-")[0]


def char_limit(language: str) -> int:
    """Character limit for ``language``; unknown codes get :data:`DEFAULT_CHAR_LIMIT`.

    Unknown languages are not an error here: whether a language is supported is the tokenizer's
    decision (it knows the checkpoint's vocabulary); splitting only needs a sensible length.
    """
    return CHAR_LIMITS.get(base_language(language), DEFAULT_CHAR_LIMIT)
