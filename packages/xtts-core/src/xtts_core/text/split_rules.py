"""Data for the incremental sentence splitter: sentence-final punctuation and abbreviations.

Kept apart from the code so the tables can grow without touching the algorithm. The abbreviation
sets start from the reference's ``_abbreviations`` tables (the words its normaliser expands, so
XTTS-v2 was trained on them mid-sentence) plus a few common titles; they are only used to decide
that a ``.`` does *not* end a sentence, so a missing entry costs an early split, never lost text.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = [
    "ABBREVIATIONS",
    "CJK_TERMINALS",
    "CLOSERS",
    "OPENERS",
    "TERMINALS",
    "abbreviations",
]

CJK_TERMINALS: Final = frozenset("。！？｡．")
"""Full-width sentence ends: CJK text puts no space after them, so the next character is proof."""

TERMINALS: Final = frozenset(".!?…؟।॥‼⁇⁈⁉") | CJK_TERMINALS
"""Every character that can end a sentence (Arabic ``؟``, Devanagari danda ``।`` included)."""

CLOSERS: Final = frozenset("\"'”’»›)]}」』）】〕〉》〗〙〛")
"""Closing quotes and brackets that stay with the sentence they follow."""

OPENERS: Final = frozenset("\"'“‘«‹([{「『（【〔〈《〖〘〚")
"""Opening quotes and brackets stripped before looking a word up in :data:`ABBREVIATIONS`."""

_COMMON: Final = frozenset({"dr", "st", "co", "jr", "ltd"})

ABBREVIATIONS: Final = MappingProxyType(
    {
        "en": frozenset(
            {"mr", "mrs", "ms", "maj", "gen", "drs", "rev", "lt", "hon", "sgt", "capt", "esq"}
            | {"col", "ft", "prof", "vs", "mt", "inc", "fig", "vol", "approx", "dept", "ave"}
            | {"jan", "feb", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
        )
        | _COMMON,
        "es": frozenset({"sr", "sra", "dra", "srta", "ud", "uds", "prof"}) | _COMMON,
        "fr": frozenset({"mme", "mlle", "mr", "m", "prof"}) | _COMMON,
        "de": frozenset({"fr", "hr", "prof", "nr", "bzw", "ca", "vgl", "str"}) | _COMMON,
        "pt": frozenset({"sr", "sra", "dra", "prof", "profa"}) | _COMMON,
        "it": frozenset({"sig", "sig.ra", "sigg", "prof", "dott", "ing"}) | _COMMON,
        "pl": frozenset({"p", "m", "dr", "sw", "jr", "prof", "inż", "nr", "ul"}),
        "cs": frozenset({"dr", "ing", "p", "prof", "mgr", "č"}),
        "ru": frozenset({"г-жа", "г-н", "д-р", "проф", "ул", "им", "см"}),
        "nl": frozenset({"dhr", "mevr", "dr", "jhr", "prof", "mr", "ir"}),
        "tr": frozenset({"b", "byk", "dr", "prof", "doç", "sn"}),
        "hu": frozenset({"dr", "b", "nőv", "prof", "id", "ifj", "özv"}),
        "ar": frozenset(),
        "zh": frozenset(),
        "ja": frozenset(),
        "ko": frozenset(),
        "hi": frozenset(),
    }
)
"""Lower-cased words (without their final ``.``) after which a ``.`` does not end a sentence."""


def abbreviations(base: str) -> frozenset[str]:
    """Abbreviation set for a base language code; English's for unknown codes."""
    return ABBREVIATIONS.get(base, ABBREVIATIONS["en"])
