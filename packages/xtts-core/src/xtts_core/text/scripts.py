"""Which writing systems a text uses, to warn when it does not match the requested language.

XTTS reads whatever letters it is given: Cyrillic text tagged ``en`` still encodes (letters the
vocabulary lacks become ``[UNK]``), but the voice mispronounces or skips it. That is almost always
a caller's mistake (a wrong ``language_code``), so the tokenizer logs a warning naming the scripts
it found rather than refusing the text. Latin letters are expected in every language: brand
names and acronyms appear in all of them.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from typing import Final

LATIN: Final = "LATIN"
HAN: Final = "CJK"

#: The scripts each base language is written in, named by the first word of the Unicode names
#: of their letters (``CJK`` for Han ideographs).
LANGUAGE_SCRIPTS: Final[dict[str, frozenset[str]]] = {
    **{
        lang: frozenset({LATIN})
        for lang in ("en", "es", "fr", "de", "it", "pt", "pl", "tr", "nl", "cs", "hu")
    },
    "ru": frozenset({"CYRILLIC"}),
    "ar": frozenset({"ARABIC"}),
    "hi": frozenset({"DEVANAGARI"}),
    "zh": frozenset({HAN}),
    "ja": frozenset({HAN, "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL", HAN}),
}

_WIDTH_PREFIXES: Final = ("FULLWIDTH ", "HALFWIDTH ")


def letter_script(char: str) -> str | None:
    """The script of a letter (``LATIN``, ``CYRILLIC``, ``CJK``...), ``None`` for a non-letter."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    for prefix in _WIDTH_PREFIXES:
        name = name.removeprefix(prefix)
    # "KATAKANA-HIRAGANA PROLONGED SOUND MARK" belongs to Japanese kana.
    return name.split(" ", 1)[0].split("-", 1)[0] or None


def script_mismatch(text: str, language: str) -> str | None:
    """Why ``text`` looks written for another language than ``language`` (a base code), or None.

    A mismatch is a letter in a script that is neither the language's nor Latin, or a text whose
    letters are mostly Latin when the language is not written in Latin.
    """
    expected = LANGUAGE_SCRIPTS.get(language)
    if expected is None:
        return None
    counts = Counter(s for s in map(letter_script, text) if s is not None)
    foreign = sorted(s for s in counts if s not in expected and s != LATIN)
    if foreign:
        return f"letters in {', '.join(s.lower() for s in foreign)} script"
    latin = counts.get(LATIN, 0)
    if LATIN not in expected and latin * 2 > sum(counts.values()):
        return "mostly latin letters"
    return None
