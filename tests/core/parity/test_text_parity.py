"""Our text front end against coqui-tts 0.28's (``preprocess_text`` and ``VoiceBpeTokenizer``).

For every sentence of the corpus (``text_corpus.py``, at least 30 per language) the normalised
text and the token ids through the same vocab file must be equal. The reference raises on some
inputs (num2words lacks Hindi, Czech ordinals, some decimals and very long numbers); we never
raise there, and ``REFERENCE_RAISES`` pins both facts and our chosen output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from text_corpus import corpus  # pytest puts this directory on sys.path (no __init__.py)

from xtts_core.text.normalize import NORMALIZED_LANGUAGES, normalize
from xtts_core.text.tokenizer import XttsTokenizer
from xtts_core.text.vocab import write_vocab

pytest.importorskip("TTS")

pytestmark = [
    pytest.mark.parity,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

CASES = [(lang, text) for lang in NORMALIZED_LANGUAGES for text in corpus(lang)]

#: Inputs on which the reference raises, with what we produce instead (deliberate differences).
REFERENCE_RAISES = [
    # num2words has no Hindi: the reference raises NotImplementedError on any ASCII digit; we
    # keep the digits.
    ("hi", "मेरे पास 5 सेब और 12.5 किलो हैं", "मेरे पास 5 सेब और 12.5 किलो हैं"),
    # num2words has no Czech ordinals: "3." raises; we read the cardinal and keep the dot.
    ("cs", "Byl 3. v pořadí.", "byl tři. v pořadí."),
    # num2words cannot spell this Hungarian decimal (KeyError); we spell both parts.
    ("hu", "3.14159", "három.tizennégyezer-százötvenkilenc"),
    # Spanish overflows on 200 digits; we read them digit by digit.
    ("es", "9" * 200, " ".join(["nueve"] * 200)),
]


@pytest.fixture(scope="module")
def reference() -> Any:
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

    return VoiceBpeTokenizer()


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text-vocab") / "vocab.json"
    write_vocab(path, 300)
    return path


def test_corpus_has_thirty_sentences_per_language() -> None:
    for lang in NORMALIZED_LANGUAGES:
        assert len(set(corpus(lang))) >= 30, lang


@pytest.mark.parametrize(("lang", "text"), CASES)
def test_normalize_matches_reference(reference: Any, lang: str, text: str) -> None:
    assert normalize(text, lang) == reference.preprocess_text(text, lang)


@pytest.mark.parametrize("lang", NORMALIZED_LANGUAGES)
def test_token_ids_match_reference(vocab_file: Path, lang: str) -> None:
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

    ref = VoiceBpeTokenizer(vocab_file=vocab_file)
    ours = XttsTokenizer.from_file(vocab_file)
    for text in corpus(lang):
        assert ours.encode(text, lang) == ref.encode(text, lang), text


@pytest.mark.parametrize(("lang", "text", "expected"), REFERENCE_RAISES)
def test_where_the_reference_raises_we_do_not(
    reference: Any, lang: str, text: str, expected: str
) -> None:
    with pytest.raises(Exception):  # noqa: B017 - whatever num2words raises
        reference.preprocess_text(text, lang)
    assert normalize(text, lang) == expected


def test_chinese_quantity_too_long_for_the_reference_is_read_its_way() -> None:
    """The reference reads a quantity recursively, once per 44 digits, and a number of tens of
    thousands of digits exceeds Python's recursion limit. (Through ``preprocess_text`` such a
    string also takes the reference minutes, its patterns being quadratic in the run length.)
    Ours reads it without recursion, exactly as the reference does when given the stack."""
    import sys

    from TTS.tts.layers.xtts.zh_num2words import Cardinal

    from xtts_core.text.chinese import spell_quantity

    number = "120" * 20_000
    with pytest.raises(RecursionError):
        Cardinal(cardinal=number).cardinal2chntext()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + 5_000)
    try:
        expected = Cardinal(cardinal=number).cardinal2chntext()
    finally:
        sys.setrecursionlimit(limit)
    assert spell_quantity(number) == expected
