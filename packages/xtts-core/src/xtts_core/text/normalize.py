"""Text normalisation before tokenisation: what XTTS-v2's training text went through.

:func:`normalize` reproduces the reference front end's ``preprocess_text`` (coqui-tts 0.28,
xtts-reference.md §1.6) for the languages of its multilingual cleaner: ``"`` dropped, Turkish
capitals ``İ Ö Ü`` mapped, lower-cased, numbers spelt (:mod:`~xtts_core.text.numbers`),
abbreviations (:mod:`~xtts_core.text.abbreviations`) and symbols
(:mod:`~xtts_core.text.symbols`) expanded, whitespace collapsed; Korean is then romanised
(``ko_speech_tools.hangul_romanize``, as the reference does). Chinese numbers are read by
:mod:`~xtts_core.text.chinese` instead (it also turns punctuation into commas), and the result is
then written in tone-numbered pinyin. Japanese skips all of that, as in
the reference: cutlet turns it into Hepburn romaji (numbers stay digits), then it is lower-cased
(and whitespace-collapsed, which the reference omits).

The Japanese, Chinese and Korean converters are imported on first use: without a language's
extra its text raises :class:`~xtts_core.errors.MissingExtraError` naming the extra
(:func:`xtts_core._extras.require_language`), and every other language is unaffected. Nothing
else raises.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

from xtts_core._extras import require_inference, require_language

require_inference("xtts_core.text.normalize")

from xtts_core.text.abbreviations import ABBREVIATIONS  # noqa: E402
from xtts_core.text.chinese import normalize_numbers, to_pinyin  # noqa: E402
from xtts_core.text.numbers import expand_numbers  # noqa: E402
from xtts_core.text.symbols import SYMBOL_ORDER, SYMBOL_WORDS  # noqa: E402

if TYPE_CHECKING:
    from cutlet import Cutlet

#: Languages normalised as the reference does.
NORMALIZED_LANGUAGES: tuple[str, ...] = (
    "en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "hu", "hi", "ko", "ja",
    "zh",
)  # fmt: skip

_TURKISH_CAPITALS = str.maketrans({"İ": "i", "Ö": "ö", "Ü": "ü"})
_WHITESPACE = re.compile(r"\s+")


def normalize(text: str, language: str, *, expand: bool = True) -> str:
    """``text`` as the GPT should read it in ``language`` (a base code: ``en``, ``zh``, ...).

    ``expand`` off (``apply_text_normalization: off``) leaves numbers, abbreviations and symbols
    as written; the rest (case, whitespace, the romanisation of Japanese, Korean and Chinese,
    which the vocabulary needs) is done either way.
    """
    if language not in NORMALIZED_LANGUAGES:
        return collapse_whitespace(text.lower())
    if language == "ja":
        # The reference stops at lower(); cutlet leaves a double space around some symbols
        # ("0¡¡0" -> "0  0"), which would become two [SPACE] tokens, so we also collapse.
        return collapse_whitespace(str(_romaji_converter().romaji(text)).lower())
    text = text.replace('"', "")
    if language == "tr":
        text = text.translate(_TURKISH_CAPITALS)
    text = text.lower()
    if expand:
        text = _expand(text, language)
    text = collapse_whitespace(text)
    if language == "ko":
        text = _romanize_korean(text)
    elif language == "zh":
        text = to_pinyin(text)
    return text


def _expand(text: str, language: str) -> str:
    """Numbers, abbreviations and symbols spelt out."""
    text = normalize_numbers(text) if language == "zh" else expand_numbers(text, language)
    for pattern, spoken in _abbreviation_patterns(language):
        text = pattern.sub(spoken, text)
    for symbol, word in zip(SYMBOL_ORDER, SYMBOL_WORDS[language], strict=True):
        text = text.replace(symbol, f" {word} ")
    return text


def collapse_whitespace(text: str) -> str:
    """Every whitespace run becomes one space; no space at either end."""
    return _WHITESPACE.sub(" ", text).strip()


@cache
def _abbreviation_patterns(language: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    compiled = []
    for written, spoken in ABBREVIATIONS.get(language, ()):
        if written.endswith("."):
            regex = rf"\b{re.escape(written[:-1])}\."
        else:
            regex = rf"\b{re.escape(written)}\b"
        compiled.append((re.compile(regex, re.IGNORECASE), spoken.replace("\\", r"\\")))
    return tuple(compiled)


def _romanize_korean(text: str) -> str:
    require_language("ko")
    from ko_speech_tools import hangul_romanize

    return str(hangul_romanize(text))


@cache
def _romaji_converter() -> Cutlet:
    """One cutlet converter per process: building it loads the MeCab dictionary (unidic-lite)."""
    require_language("ja")
    from cutlet import Cutlet

    return Cutlet()
