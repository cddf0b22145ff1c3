"""Chinese as XTTS-v2 read it in training: numbers in Chinese words, then tone-numbered pinyin.

:func:`normalize_numbers` gives the output of the reference front end's ``zh_num2words()``
(coqui-tts 0.28's ``TextNorm`` with its default settings, which the reference's
``expand_numbers_multilingual`` uses for ``zh``). Its passes run in this order, each on the
output of the one before:

1. dates (``2024年5月3日`` -> 二零二四年五月三日: the year digit by digit);
2. money (a number followed by 元 块 角 毛 分 or 百 千 万 亿, as a quantity: 十五元);
3. mobile numbers (``13812345678``, ``+86 ...``) and landlines (``010-12345678``), digit by digit;
4. fractions (``3/4`` -> 四分之三) and percentages (``50%`` / ``50％`` -> 百分之五十);
5. a number before a measure word, as a quantity (``15个`` -> 十五个);
6. any other run of 4 to 32 digits, digit by digit (``2024`` -> 二零二四);
7. every other number as a quantity, decimals included (``12.5`` -> 十二点五);
8. ``P2P``-style words get their ``2`` back; then every punctuation mark becomes ``,``.

The reference's quirks are kept on purpose, because the model was trained on them: each pass
collects its matches first and then replaces the *first occurrence* of each matched text (which
is not always the match itself), ``两`` replaces ``二`` before 百 千 万..., a leading 一十 is 十,
ASCII ``0`` (only) is stripped before reading, and full-width characters other than ``％`` are
not folded (full-width digits are digits). Where the reference's patterns backtrack
quadratically on long runs, ours are rewritten to find the same matches in linear time.

Deliberate difference: on a number of tens of thousands of digits read as a quantity the
reference recurses too deep and raises; we read it the same way without recursion limits.

:func:`to_pinyin` is the reference's ``chinese_transliterate``: pypinyin, TONE3 style with 5 for
the neutral tone, the first reading of each character, joined without separators. pypinyin is
imported on the first call, so the number reading works without the ``zh`` extra.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from xtts_core._extras import require_language
from xtts_core.text.chinese_tables import (
    CURRENCY_UNITS,
    DIGITS,
    POINT,
    PUNCTUATION,
    QUANTIFIER_CHARS,
    QUANTIFIER_WORDS,
    TEN,
    TWO_BEFORE_UNIT,
    UNITS,
)

__all__ = ["normalize_numbers", "spell_digits", "spell_quantity", "to_pinyin"]

_NUMBER = r"\d+(?:\.\d+)?"
_QUANTIFIER = "[" + QUANTIFIER_CHARS + "]|" + "|".join(QUANTIFIER_WORDS)
_UNIT_CHARS = frozenset(char for _, char in UNITS)
_LARGEST_POWER, _LARGEST_UNIT = UNITS[0]
_PUNCTUATION_TO_COMMA = str.maketrans(PUNCTUATION, "," * len(PUNCTUATION))

# The reference writes the date and money patterns as `\D+(...)`. A match then starts right
# after a non-digit at least one character past the previous match; `(?<=\D)` searched from one
# past the previous end (see _after_non_digit) finds the same matches without retrying the
# `\D+` run at every start. Unlike the reference's, the date pattern cannot match empty text:
# its empty matches replaced nothing.
_DATE = re.compile(
    r"(?<=\D)(?:(?:[089]\d|(?:19|20)\d{2})年(?:\d{1,2}月(?:\d{1,2}[日号])?)?"
    r"|\d{1,2}月(?:\d{1,2}[日号])?)"
)
_MONEY = re.compile(rf"(?<=\D){_NUMBER}[多余几]?{CURRENCY_UNITS}(?:\d{CURRENCY_UNITS}?)?")
_MOBILE = re.compile(r"\D((?:\+?86 ?)?1(?:[38]\d|5[0-35-9]|7[678]|9[89])\d{8})\D")
_LANDLINE = re.compile(r"\D((?:0(?:10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})\D")
# `(?<!\d)`: a match can only start where a digit run starts (the reference's leftmost match
# starts there anyway), which spares the quadratic retries inside long digit runs.
_FRACTION = re.compile(r"(?<!\d)\d+/\d+")
_PERCENTAGE = re.compile(rf"(?<!\d){_NUMBER}%")
_COUNTED = re.compile(rf"(?<!\d)({_NUMBER})[多余几]?(?:{_QUANTIFIER})")
_DIGIT_RUN = re.compile(r"\d{4,32}")
_ANY_NUMBER = re.compile(_NUMBER)
_LATIN_TWO_LATIN = re.compile(r"(?<![a-zA-Z])([a-zA-Z]+)二([a-zA-Z]+)")


def normalize_numbers(text: str) -> str:
    """Every number of ``text`` in Chinese words, punctuation as commas; never raises."""
    text = "^" + text + "$"  # so that a pattern needing a non-digit around a match finds one
    text = _replace_first(text, _after_non_digit(_DATE, text), _date)
    text = _replace_first(text, _after_non_digit(_MONEY, text), _money)
    text = _replace_first(text, _MOBILE.findall(text), _mobile)
    text = _replace_first(text, _LANDLINE.findall(text), _landline)
    text = _replace_first(text, _FRACTION.findall(text), _fraction)
    text = text.replace("％", "%")
    text = _replace_first(text, _PERCENTAGE.findall(text), _percentage)
    text = _replace_first(text, _COUNTED.findall(text), spell_quantity)
    text = _replace_first(text, _DIGIT_RUN.findall(text), spell_digits)
    text = _replace_first(text, _ANY_NUMBER.findall(text), spell_quantity)
    text = _replace_first(
        text,
        [m.group(0) for m in _LATIN_TWO_LATIN.finditer(text)],
        lambda word: word.replace("二", "2"),
    )
    return text.lstrip("^").rstrip("$").translate(_PUNCTUATION_TO_COMMA)


def to_pinyin(text: str) -> str:
    """``text`` with Chinese characters in tone-numbered pinyin (``中文`` -> ``zhong1wen2``).

    Raises:
        MissingExtraError: pypinyin (the ``zh`` extra) is not installed.
    """
    require_language("zh")
    from pypinyin import Style, pinyin

    readings = pinyin(text, style=Style.TONE3, heteronym=False, neutral_tone_with_five=True)
    return "".join(reading[0] for reading in readings)


def spell_digits(number: str, separators: str = "") -> str:
    """``number`` read digit by digit (``2024`` -> 二零二四), dropping ``separators``."""
    return "".join(DIGITS[int(char)] for char in number if char not in separators)


def spell_quantity(number: str) -> str:
    """``number`` (digits, at most one ``.``) as a quantity: ``1205.2`` -> 一千两百零五点二."""
    whole, _, fraction = number.partition(".")
    words = _grouped(whole) if len(whole) > 1 else [DIGITS[int(whole)]]
    if fraction:
        words += [POINT, *(DIGITS[int(char)] for char in fraction)]
    for i, word in enumerate(words):
        if word == DIGITS[2] and _before_big_unit(words, i):
            words[i] = TWO_BEFORE_UNIT
    spoken = "".join(words)
    if spoken.startswith(POINT):  # "00.5": the zeros were dropped
        return DIGITS[0] + spoken
    if spoken.startswith(DIGITS[1] + TEN):
        return spoken[1:]
    return spoken


def _grouped(number: str) -> list[str]:
    """Digits and units of a whole number, the reference's way: leading ASCII zeros dropped,
    零 kept where a group starts with zeros, nothing for an all-zero group."""
    # Above 10^44 the number is groups of 44 digits, each after a 载. The reference recurses
    # once per group and fails on very long numbers; peel them off from the right in a loop.
    groups = []
    while len(number.lstrip("0")) > _LARGEST_POWER:
        groups.append(_group(number[-_LARGEST_POWER:]))
        number = number[:-_LARGEST_POWER]
    words = _group(number)
    for group in reversed(groups):
        words += [_LARGEST_UNIT, *group]
    return words


def _group(number: str) -> list[str]:
    """:func:`_grouped` of at most 44 significant digits (recursion depth bounded by the units)."""
    significant = number.lstrip("0")
    if not significant:
        return []
    if len(significant) == 1:
        leading_zero = [DIGITS[0]] if len(number) > 1 else []
        return [*leading_zero, DIGITS[int(significant)]]
    power, unit = next((p, u) for p, u in UNITS if p < len(significant))
    return [*_group(number[:-power]), unit, *_group(significant[-power:])]


def _before_big_unit(words: list[str], i: int) -> bool:
    """Whether ``words[i]`` comes before a unit other than ten, at the start or after one."""
    after = words[i + 1] if i + 1 < len(words) else None
    before = words[i - 1] if i > 0 else None
    return (
        after in _UNIT_CHARS
        and after != TEN
        and (before is None or (before in _UNIT_CHARS and before != TEN))
    )


def _date(date: str) -> str:
    year, has_year, rest = date.partition("年")
    spoken = spell_digits(year) + "年" if has_year else ""
    if not has_year:
        rest = date
    if rest:
        month, _, day = rest.partition("月")
        spoken += spell_quantity(month) + "月"
        if day:
            spoken += spell_quantity(day[:-1]) + day[-1]
    return spoken


def _money(amount: str) -> str:
    return _ANY_NUMBER.sub(lambda m: spell_quantity(m.group(0)), amount)


def _mobile(number: str) -> str:
    return spell_digits(number, "+ ")


def _landline(number: str) -> str:
    return spell_digits(number, "-")


def _fraction(fraction: str) -> str:
    numerator, _, denominator = fraction.partition("/")
    return spell_quantity(denominator) + "分之" + spell_quantity(numerator)


def _percentage(percentage: str) -> str:
    return "百分之" + spell_quantity(percentage[:-1])


def _after_non_digit(pattern: re.Pattern[str], text: str) -> list[str]:
    """The matches of ``pattern`` (which starts with ``(?<=\\D)``) that the reference's
    ``\\D+``-prefixed pattern finds: each at least one character past the previous one."""
    found = []
    match = pattern.search(text, 1)
    while match is not None:
        found.append(match.group(0))
        match = pattern.search(text, match.end() + 1)
    return found


def _replace_first(text: str, found: Iterable[str], spell: Callable[[str], str]) -> str:
    """Replace the first occurrence of each found text in turn (the reference's way: it is not
    always where the text was found, e.g. ``5月`` inside an earlier ``15月``)."""
    for written in found:
        text = text.replace(written, spell(written), 1)
    return text
