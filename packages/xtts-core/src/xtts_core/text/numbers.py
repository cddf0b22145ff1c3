"""Numbers spelt out the way the XTTS-v2 front end spells them, with ``num2words``.

The steps, in the reference's order (xtts-reference.md §1.6), on already lower-cased text:

1. thousands separators removed: commas in ``en``/``ru`` (``1,000.5``), dots elsewhere
   (``1.000,5``);
2. amounts in pounds, dollars and euros (symbol before or after) spelt as currency; whole
   amounts lose their trailing "zero cents" part. As in the reference, an amount num2words cannot
   spell stops the currency step where it is (later currencies are left to the symbol table);
3. decimals (``12.5``, ``12,5``), except in Turkish;
4. ordinals, by a per-language suffix pattern (``1st``, ``1er``, ``3.`` in German/Czech, ...);
5. every remaining run of ASCII digits as a cardinal.

Deliberate difference: where the reference raises (num2words has no Hindi; some languages overflow
on very long numbers or cannot spell a decimal; Python refuses ``int()`` of 4,300+ digits) we do
not. A decimal num2words cannot spell becomes its two cardinals around the separator as written
(``3.14159`` -> "three.fourteen thousand..."), so that no later step reads it as an ordinal; an
ordinal it cannot spell is left as it is, so its digits fall through to step 5; a cardinal it
cannot spell is read digit by digit, or kept as digits when the language has no num2words
support at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from num2words import num2words

#: Languages whose thousands separator is a comma (decimal point a dot); the others use dots.
COMMA_THOUSANDS = frozenset({"en", "ru"})

#: Languages that do not spell decimals (the reference skips the step for them).
NO_DECIMALS = frozenset({"tr"})

#: ISO code of each currency symbol, in the order the reference expands them.
CURRENCY_SYMBOLS: tuple[tuple[str, str], ...] = (("£", "GBP"), ("$", "USD"), ("€", "EUR"))

#: The word joining units and cents in num2words' currency output; a whole amount is cut at its
#: last occurrence ("twenty dollars, zero cents" -> "twenty dollars").
CURRENCY_JOINERS: dict[str, str] = {
    "en": ", ", "es": " con ", "fr": " et ", "de": " und ", "pt": " e ", "it": " e ",
    "pl": ", ", "cs": ", ", "ru": ", ", "nl": ", ", "ar": ", ", "tr": ", ", "hu": ", ",
    "ko": ", ", "hi": ", ",
}  # fmt: skip

#: Suffixes that make a number an ordinal, per language (regex alternatives after the digits).
ORDINAL_SUFFIXES: dict[str, str] = {
    "en": r"st|nd|rd|th",
    "es": r"º|ª|er|o|a|os|as",
    "fr": r"º|ª|er|re|e|ème",
    "de": r"st|nd|rd|th|º|ª|\.(?=\s|$)",
    "pt": r"º|ª|o|a|os|as",
    "it": r"º|°|ª|o|a|i|e",
    "pl": r"º|ª|st|nd|rd|th",
    "ar": r"ون|ين|ث|ر|ى",
    "cs": r"\.(?=\s|$)",
    "ru": r"-й|-я|-е|-ое|-ье|-го",
    "nl": r"de|ste|e",
    "tr": r"\.|inci|nci|uncu|üncü",
    "hu": r"\.|adik|edik|odik|ödik|ödike|ik",
    "ko": r"번째|번|차|째",
    "hi": r"st|nd|rd|th",
}

# `\d` (any Unicode digit) and the unescaped `.` of the dot pattern (any character) are the
# reference's; only commas (resp. dots) inside a match are removed.
_COMMA_GROUPED = re.compile(r"\b\d{1,3}(,\d{3})*(\.\d+)?\b")
_DOT_GROUPED = re.compile(r"\b\d{1,3}(.\d{3})*(,\d+)?\b")
# The reference's patterns, rewritten to match the same text without its quadratic (currency:
# cubic) backtracking on long digit runs: a match can only start where a digit run starts (its
# leftmost match starts there anyway), and `[0-9.,]*[0-9]+X` is `[0-9.,]*[0-9]X`.
_DECIMAL = re.compile(r"(?<![0-9])[0-9]+[.,][0-9]+")
_INTEGER = re.compile(r"[0-9]+")
_ORDINAL = {
    lang: re.compile(rf"(?<![0-9])([0-9]+)({sfx})") for lang, sfx in ORDINAL_SUFFIXES.items()
}
_CURRENCY = tuple(
    (
        sym,
        code,
        re.compile(rf"{re.escape(sym)}[0-9.,]*[0-9]|(?<![0-9.,])[0-9.,]*[0-9]{re.escape(sym)}"),
    )
    for sym, code in CURRENCY_SYMBOLS
)
_NOT_AMOUNT = re.compile(r"[^\d.]")
_SEPARATOR = re.compile(r"([.,])")

# Python refuses int() of longer digit strings (sys.int_info.default_max_str_digits).
_MAX_INT_DIGITS = 4300


def expand_numbers(text: str, lang: str) -> str:
    """Spell every number of ``text`` (lower-cased) in ``lang``; never raises."""
    if lang in COMMA_THOUSANDS:
        text = _COMMA_GROUPED.sub(lambda m: m.group(0).replace(",", ""), text)
    else:
        text = _DOT_GROUPED.sub(lambda m: m.group(0).replace(".", ""), text)
    text = _expand_currencies(text, lang)
    if lang not in NO_DECIMALS:
        text = _DECIMAL.sub(lambda m: _decimal(m.group(0), lang), text)
    ordinal = _ORDINAL.get(lang)
    if ordinal is not None:
        text = ordinal.sub(_keep_on_error(lambda m: _ordinal(m.group(1), lang)), text)
    return _INTEGER.sub(lambda m: spell_integer(m.group(0), lang), text)


def spell_integer(digits: str, lang: str) -> str:
    """A cardinal; digit by digit if num2words cannot spell it, the digits if not even that."""
    if len(digits) <= _MAX_INT_DIGITS:
        try:
            return str(num2words(int(digits), lang=lang))
        except Exception:  # num2words raises anything from KeyError to RecursionError
            pass
    try:
        return " ".join(str(num2words(int(d), lang=lang)) for d in digits)
    except Exception:  # the language has no num2words support (hi)
        return digits


def _expand_currencies(text: str, lang: str) -> str:
    # One failure ends the step, keeping what was done before it (the reference's behaviour).
    for symbol, code, pattern in _CURRENCY:
        if symbol not in text:
            continue
        try:
            text = pattern.sub(_currency_speller(lang, code), text)
        except Exception:
            break
    return text


def _currency_speller(lang: str, code: str) -> Callable[[re.Match[str]], str]:
    return lambda match: _currency(match.group(0), lang, code)


def _currency(written: str, lang: str, code: str) -> str:
    amount = float(_NOT_AMOUNT.sub("", written.replace(",", ".")))
    spoken = str(num2words(amount, to="currency", currency=code, lang=lang))
    if amount.is_integer():
        cut = spoken.rfind(CURRENCY_JOINERS[lang])
        if cut != -1:
            spoken = spoken[:cut]
    return spoken


def _decimal(written: str, lang: str) -> str:
    try:
        return str(num2words(float(written.replace(",", ".")), lang=lang))
    except Exception:
        whole, sep, fraction = _SEPARATOR.split(written, maxsplit=1)
        return spell_integer(whole, lang) + sep + spell_integer(fraction, lang)


def _ordinal(digits: str, lang: str) -> str:
    return str(num2words(int(digits), ordinal=True, lang=lang))


def _keep_on_error(spell: Callable[[re.Match[str]], str]) -> Callable[[re.Match[str]], str]:
    def safe(match: re.Match[str]) -> str:
        try:
            return spell(match)
        except Exception:
            return match.group(0)

    return safe
