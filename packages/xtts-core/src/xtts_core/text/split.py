"""Sentence splitting: whole texts (spaCy) and streamed text (:class:`IncrementalSplitter`).

XTTS-v2 speaks one segment per GPT call, and segments longer than the language's character limit
(:mod:`xtts_core.text.limits`) degrade or overflow the 402-token text table. Two splitters:

* :func:`split_sentences` - the reference's ``split_sentence`` for a whole text: spaCy's
  rule-based ``sentencizer`` on a blank pipeline of the language (no trained model), greedy
  packing of sentences up to the limit, over-long sentences wrapped at word boundaries. spaCy
  (the ``split`` extra) is imported lazily. Without it the sentences are those of
  :class:`IncrementalSplitter` (the streaming rules below, fed the whole text), packed the same
  way: the same contract, but not always the reference's cuts (spaCy's tokenizer knows more
  abbreviations than :mod:`xtts_core.text.split_rules`). One warning is logged the first time.
* :class:`IncrementalSplitter` - for text that arrives in fragments (an LLM's stream). Pure Python
  and fast per fragment; it releases one sentence as soon as no later text can change where it
  ends, so generation can start early without cutting at "Dr." or "3.5".

Both return stripped, non-empty slices of the input: removing whitespace from the segments and
from the input gives the same string (no character is dropped, changed or reordered).

Differences from the reference, on purpose: the packing counts the joining space, so a segment
never exceeds the limit (the reference's can by one); segments are slices of the input, so CJK
sentences are not re-joined with spaces; a sentence boundary spaCy puts inside a whitespace-free
run of non-CJK text (Polish and Chinese pipelines split "3.5" into "3." and "5") is undone.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
from typing import TYPE_CHECKING, Final

from xtts_core.errors import ParameterError
from xtts_core.text.limits import base_language, char_limit
from xtts_core.text.split_rules import CJK_TERMINALS, CLOSERS, OPENERS, TERMINALS, abbreviations

if TYPE_CHECKING:
    from spacy.language import Language

__all__ = ["SPACY_FALLBACKS", "IncrementalSplitter", "split_sentences"]

Span = tuple[int, int]

SPACY_FALLBACKS: Final = {"ja": None, "ko": "xx"}
"""Languages whose own spaCy class needs more than spaCy, and what is used instead.

``spacy.blank("ja")`` needs SudachiPy + SudachiDict and ``spacy.blank("ko")`` needs mecab-ko, only
to tokenise; the sentencizer itself is punctuation-based. Korean puts spaces between sentences,
so the multi-language ``xx`` pipeline splits it the same way. Japanese does not, and ``xx`` would
see a whole paragraph as one token, so ``None`` means this module's own punctuation rule.
"""

logger = logging.getLogger(__name__)

_WORD: Final = re.compile(r"\S+")
_RUN: Final = re.compile("[" + re.escape("".join(sorted(TERMINALS))) + "]+")
_OPENERS: Final = "".join(sorted(OPENERS))


def _is_cjk(char: str) -> bool:
    """True for CJK punctuation, kana, ideographs, Hangul and full-width forms (no spaces there)."""
    code = ord(char)
    return (
        0x3000 <= code <= 0x9FFF
        or 0xAC00 <= code <= 0xD7AF
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF
    )


def _check_limit(limit: int) -> int:
    if limit < 1:
        raise ParameterError(f"the split limit must be at least 1 character, got {limit}")
    return limit


# --------------------------------------------------------------------------- whole texts


def split_sentences(text: str, language: str, limit: int | None = None) -> list[str]:
    """Split ``text`` into segments of at most ``limit`` characters, at sentence ends if possible.

    Args:
        text: the text to speak.
        language: an XTTS language code; region suffixes are ignored (``en-US``, ``zh-cn``).
        limit: maximum segment length; defaults to the language's :func:`char_limit`.

    Returns:
        Stripped, non-empty segments. Text shorter than the limit comes back as one piece (without
        loading spaCy); whitespace-only text gives ``[]``.

    Raises:
        ParameterError: ``limit`` is below 1.
    """
    base = base_language(language)
    size = _check_limit(char_limit(base) if limit is None else limit)
    stripped = text.strip()
    if not stripped:
        return []
    if len(stripped) < size:
        return [stripped]
    units: list[Span] = []
    if SPACY_FALLBACKS.get(base, base) is not None and not _has_spacy():
        units = _streamed_spans(text, base, size)
    else:
        for start, end in _sentence_spans(text, base):
            units.extend([(start, end)] if end - start <= size else _wrap(text, start, end, size))
    return [text[start:end] for start, end in _pack(units, size)]


@functools.cache
def _has_spacy() -> bool:
    """Is spaCy importable? Logged once when it is not (the rule-based splitting is used)."""
    if importlib.util.find_spec("spacy") is not None:
        return True
    logger.warning(
        "spaCy is not installed: long text is split by the streaming splitter's rules; "
        "install the reference's splitting with: pip install 'xtts-core[split]'"
    )
    return False


def _streamed_spans(text: str, base: str, size: int) -> list[Span]:
    """The segments :class:`IncrementalSplitter` makes of the whole ``text``, as offsets.

    Each segment is a slice of ``text`` and they come in order, separated by whitespace only, so
    the first occurrence from the end of the previous one is the segment itself.
    """
    splitter = IncrementalSplitter(base, size)
    spans: list[Span] = []
    position = 0
    for segment in [*splitter.feed(text), *splitter.flush()]:
        start = text.index(segment, position)
        position = start + len(segment)
        spans.append((start, position))
    return spans


def _sentence_spans(text: str, base: str) -> list[Span]:
    """Sentence (start, end) offsets, stripped of whitespace and with glued pieces merged."""
    fallback = SPACY_FALLBACKS.get(base, base)
    if fallback is None:
        raw = _punctuation_spans(text)
    else:
        nlp = _pipeline(fallback)
        nlp.max_length = max(nlp.max_length, len(text) + 1)  # sentencizer memory is linear
        raw = [(sent.start_char, sent.end_char) for sent in nlp(text).sents]
    spans: list[Span] = []
    for start, end in raw:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start == end:
            continue
        glued = bool(spans) and spans[-1][1] == start
        if glued and not (_is_cjk(text[start - 1]) or _is_cjk(text[start])):
            spans[-1] = (spans[-1][0], end)  # no space between them: one token, not two sentences
        else:
            spans.append((start, end))
    return spans


@functools.cache
def _pipeline(code: str) -> Language:
    """A blank spaCy pipeline with the sentencizer, built once per language (import is slow)."""
    import spacy

    try:
        nlp = spacy.blank(code)
    except (ImportError, KeyError, ValueError):
        nlp = spacy.blank("xx")  # a language spaCy lacks or cannot tokenise without extras
    nlp.add_pipe("sentencizer")
    return nlp


def _punctuation_spans(text: str) -> list[Span]:
    """Sentences ending at terminal punctuation (+ closers) followed by a space or CJK text."""
    spans: list[Span] = []
    start = 0
    for match in _RUN.finditer(text):
        end = match.end()
        while end < len(text) and text[end] in CLOSERS:
            end += 1
        last = text[match.end() - 1]
        after = text[end] if end < len(text) else " "
        if after.isspace() or last in CJK_TERMINALS or (last != "." and _is_cjk(after)):
            spans.append((start, end))
            start = end
    spans.append((start, len(text)))
    return spans


def _wrap(text: str, start: int, end: int, size: int) -> list[Span]:
    """Word-boundary wrap of ``text[start:end]`` (textwrap semantics: long words are broken)."""
    lines: list[Span] = []
    line: Span | None = None
    for match in _WORD.finditer(text, start, end):
        word_start, word_end = match.span()
        while word_end - word_start > size:
            if line is not None:
                lines.append(line)
                line = None
            lines.append((word_start, word_start + size))
            word_start += size
        if line is None:
            line = (word_start, word_end)
        elif word_end - line[0] <= size:
            line = (line[0], word_end)
        else:
            lines.append(line)
            line = (word_start, word_end)
    if line is not None:
        lines.append(line)
    return lines


def _pack(units: list[Span], size: int) -> list[Span]:
    """Greedily join consecutive units while the joined slice stays within ``size``."""
    packed: list[Span] = []
    for start, end in units:
        if packed and end - packed[-1][0] <= size:
            packed[-1] = (packed[-1][0], end)
        else:
            packed.append((start, end))
    return packed


# --------------------------------------------------------------------------- streamed text

_END, _NOT_END, _UNDECIDED = "end", "not-end", "undecided"


class IncrementalSplitter:
    """Split text that arrives in fragments into sentences as soon as they are certain.

    A sentence ends at terminal punctuation (``. ! ? …``, CJK ``。！？``, Arabic ``؟``, Hindi
    ``।``) plus any closing quotes or brackets, when the next character is whitespace and then
    more text follows (for CJK punctuation the next character alone suffices). A ``.`` or ``…``
    does not end a sentence before a lower-case word, and a single ``.`` does not after a known
    abbreviation (:mod:`xtts_core.text.split_rules`), an initial ("J.") or a dotted abbreviation
    ("e.g."). "3.5" never splits: a sentence end needs a space after it. A sentence longer than
    the limit is cut at its last word boundary within the limit (or hard, inside one long word).

    Every decision depends only on the text from the current segment's start up to the
    characters that settle it, and is taken only once those characters have arrived, so the
    segments are a function of the concatenated input alone: any fragmentation of the same text
    gives the same segments. Each sentence is its own segment (no packing): streaming wants the
    first audio early.

    Not thread-safe; use one instance per stream.
    """

    def __init__(self, language: str, limit: int | None = None) -> None:
        """Start an empty stream for ``language`` (region suffixes ignored).

        Raises:
            ParameterError: ``limit`` is below 1.
        """
        self.language = base_language(language)
        self.limit = _check_limit(char_limit(self.language) if limit is None else limit)
        self._abbreviations = abbreviations(self.language)
        self._buffer = ""  # text not yet released, leading whitespace dropped
        self._scan = 0  # terminal runs before this offset are known not to end a sentence

    def feed(self, fragment: str) -> list[str]:
        """Add ``fragment`` and return the segments that it made certain (often none)."""
        if not fragment:
            return []
        self._buffer = self._buffer + fragment if self._buffer else fragment.lstrip()
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """End the stream: return every remaining segment and reset for a new stream."""
        segments = self._drain(final=True)
        self._buffer = ""
        self._scan = 0
        return segments

    def _drain(self, *, final: bool) -> list[str]:
        buf = self._buffer
        n = len(buf)
        segments: list[str] = []
        start, scan = 0, self._scan
        while True:
            while start < n and buf[start].isspace():
                start += 1
            if start == n:
                break
            cut, scan = self._find_cut(buf, start, max(scan, start), final)
            if cut is None:
                break
            segment = buf[start:cut].rstrip()
            if segment:
                segments.append(segment)
            start = cut
        self._buffer = buf[start:]
        self._scan = max(scan - start, 0)
        return segments

    def _find_cut(self, buf: str, start: int, scan: int, final: bool) -> tuple[int | None, int]:
        """Where the segment starting at ``start`` ends, if settled; else None and a resume offset."""
        n = len(buf)
        horizon = start + self.limit  # the segment buf[start:cut] fits iff cut <= horizon
        for match in _RUN.finditer(buf, scan):
            first, last = match.span()
            if first >= horizon:
                break
            verdict, cut = self._verdict(buf, start, first, last)
            if verdict == _NOT_END:
                continue
            if cut > horizon:
                break  # the first sentence end is beyond the limit: cut at a word instead
            # Undecided means only whitespace follows the cut (or nothing at all), so when the
            # buffer already runs past the limit the word-boundary cut would land here too.
            if verdict == _END or final or n > horizon:
                return cut, cut
            return None, first
        if n - start <= self.limit:
            return (n, n) if final else (None, n)
        cut = horizon
        for index in range(horizon, start, -1):
            if buf[index].isspace():
                cut = index
                break
        return cut, cut

    def _verdict(self, buf: str, start: int, first: int, last: int) -> tuple[str, int]:
        """Does the terminal run ``buf[first:last]`` end a sentence, and where is the cut?"""
        n = len(buf)
        cut = last
        while cut < n and buf[cut] in CLOSERS:
            cut += 1
        if cut == n:
            return _UNDECIDED, cut
        mark, after = buf[last - 1], buf[cut]
        if mark in CJK_TERMINALS:
            return _END, cut
        if not after.isspace():
            return (_END if mark != "." and _is_cjk(after) else _NOT_END), cut
        following = cut + 1
        while following < n and buf[following].isspace():
            following += 1
        if following == n:
            return _UNDECIDED, cut
        if mark in ".…" and buf[following].islower():
            return _NOT_END, cut
        if last - first == 1 and mark == "." and self._is_abbreviation(buf, start, first):
            return _NOT_END, cut
        return _END, cut

    def _is_abbreviation(self, buf: str, start: int, dot: int) -> bool:
        """Is the word before the ``.`` at ``dot`` an abbreviation, an initial or "e.g"-like?"""
        begin = dot
        while begin > start and not buf[begin - 1].isspace():
            begin -= 1
        word = buf[begin:dot].lstrip(_OPENERS).lower()
        if not word:
            return False
        if word in self._abbreviations or (len(word) == 1 and word.isalpha()):
            return True
        parts = word.split(".")
        return len(parts) > 1 and all(part.isalpha() and len(part) <= 3 for part in parts)
