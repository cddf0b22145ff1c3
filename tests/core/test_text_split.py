"""Sentence splitting: split_sentences (spaCy) and the streaming IncrementalSplitter."""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xtts_core.errors import ParameterError
from xtts_core.text import split
from xtts_core.text.limits import char_limit
from xtts_core.text.split import IncrementalSplitter, split_sentences

LANGUAGES = ["en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "zh-cn",
             "hu", "ko", "ja", "hi"]  # fmt: skip


def stream(text: str, cuts: list[int], language: str = "en", limit: int | None = None) -> list[str]:
    """Feed ``text`` cut at ``cuts`` and collect every segment, flush included."""
    splitter = IncrementalSplitter(language, limit)
    segments: list[str] = []
    bounds = [0, *sorted(set(cuts)), len(text)]
    for begin, end in itertools.pairwise(bounds):
        segments += splitter.feed(text[begin:end])
    return segments + splitter.flush()


def whole(text: str, language: str = "en", limit: int | None = None) -> list[str]:
    return stream(text, [], language, limit)


def squeeze(parts: list[str] | str) -> str:
    """All non-whitespace characters in order."""
    return "".join("".join(part.split()) for part in ([parts] if isinstance(parts, str) else parts))


def check_segments(segments: list[str], text: str, limit: int) -> None:
    assert all(segment and segment == segment.strip() for segment in segments)
    assert all(len(segment) <= limit for segment in segments)
    assert squeeze(segments) == squeeze(text)


# --------------------------------------------------------------------------- properties

TOKENS = ["Dr.", "Mr.", "mrs.", "3.5", "$3.50.", "hello", "World", "e.g.", "J.", ".", "!", "?",
          "...", "…", '"', "'", ")", "”", "?!", "St.", "ok.", "Then"]  # fmt: skip
SEPARATORS = [" ", " ", " ", "  ", "\n", ""]
CJK_TOKENS = ["。", "！", "？", "你好", "」", "再见", "日本語"]

latin_words = st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join)
mixed_text = st.lists(
    st.tuples(st.sampled_from(TOKENS + CJK_TOKENS), st.sampled_from(SEPARATORS)), max_size=60
).map(lambda pairs: "".join(token + sep for token, sep in pairs))
any_text = st.one_of(mixed_text, st.text(max_size=300))


@st.composite
def fragmented(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> tuple[str, list[int]]:
    text = draw(texts)
    cuts = draw(st.lists(st.integers(0, len(text)), max_size=40))
    return text, cuts


@settings(max_examples=150, deadline=None)
@given(fragmented(any_text), st.sampled_from(LANGUAGES), st.integers(1, 120))
def test_fragmentation_does_not_matter(
    sample: tuple[str, list[int]], language: str, limit: int
) -> None:
    text, cuts = sample
    expected = whole(text, language, limit)
    assert stream(text, cuts, language, limit) == expected
    assert stream(text, list(range(len(text) + 1)), language, limit) == expected  # char by char
    check_segments(expected, text, limit)


@settings(max_examples=100, deadline=None)
@given(fragmented(latin_words), st.integers(8, 300))
def test_words_kept_in_order(sample: tuple[str, list[int]], limit: int) -> None:
    text, cuts = sample
    segments = stream(text, cuts, "en", limit)
    assert " ".join(segments).split() == text.split()
    check_segments(segments, text, limit)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400), st.sampled_from(LANGUAGES))
def test_default_limit_and_arbitrary_unicode(text: str, language: str) -> None:
    check_segments(whole(text, language), text, char_limit(language))


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(mixed_text, latin_words),
    st.sampled_from(["en", "de", "zh", "ja"]),
    st.integers(10, 80),
)
def test_split_sentences_properties(text: str, language: str, limit: int) -> None:
    segments = split_sentences(text, language, limit)
    check_segments(segments, text, limit)


@settings(max_examples=25, deadline=None)
@given(latin_words, st.integers(8, 80))
def test_split_sentences_keeps_words(text: str, limit: int) -> None:
    assert " ".join(split_sentences(text, "en", limit)).split() == text.split()


# --------------------------------------------------------------------------- incremental examples


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr. Smith paid $3.50. Then he left!", ["Dr. Smith paid $3.50.", "Then he left!"]),
        ("The value is 3.5 today. Next one.", ["The value is 3.5 today.", "Next one."]),
        ('He said "stop." Then he ran.', ['He said "stop."', "Then he ran."]),
        ("Wait… what? Yes!", ["Wait… what?", "Yes!"]),
        ("It costs approx. ten euros. Fine.", ["It costs approx. ten euros.", "Fine."]),
        ("J. K. Rowling wrote it. Really?! Yes.", ["J. K. Rowling wrote it.", "Really?!", "Yes."]),
        ("See e.g. the docs. Mr. Bean (Jr.) came.", ["See e.g. the docs.", "Mr. Bean (Jr.) came."]),
        ("Visit example.com. It works.", ["Visit example.com.", "It works."]),
        ("你好。再见！谢谢？", ["你好。", "再见！", "谢谢？"]),
        ("「こんにちは。」元気？うん", ["「こんにちは。」", "元気？", "うん"]),
        ("すごい!次は", ["すごい!", "次は"]),
        ("क्या हाल है? मैं ठीक हूँ। धन्यवाद", ["क्या हाल है?", "मैं ठीक हूँ।", "धन्यवाद"]),
        ("هل أنت بخير؟ نعم.", ["هل أنت بخير؟", "نعم."]),
        ("   ", []),
        ("", []),
    ],
)
def test_incremental_examples(text: str, expected: list[str]) -> None:
    assert whole(text) == expected
    assert stream(text, list(range(len(text)))) == expected


def test_releases_only_when_certain() -> None:
    splitter = IncrementalSplitter("en")
    assert splitter.feed("Dr") == []
    assert splitter.feed(". Smith paid 3") == []  # "Dr." is an abbreviation
    assert splitter.feed(".") == []  # could be a decimal point
    assert splitter.feed("5. ") == []  # needs the next word: "3.5. then" would not split
    assert splitter.feed("T") == ["Dr. Smith paid 3.5."]
    assert splitter.feed("hen he left!") == []
    assert splitter.flush() == ["Then he left!"]
    assert splitter.flush() == []


def test_language_abbreviations() -> None:
    assert whole("Hr. Müller kommt. Gut.", "de") == ["Hr. Müller kommt.", "Gut."]
    assert whole("Hr. Müller kommt. Gut.", "en") == ["Hr.", "Müller kommt.", "Gut."]
    assert whole("Sra. García llegó. Bien.", "es-ES") == ["Sra. García llegó.", "Bien."]


def test_flush_resets_for_a_new_stream() -> None:
    splitter = IncrementalSplitter("en")
    assert splitter.feed("One. Two") == ["One."]
    assert splitter.flush() == ["Two"]
    assert splitter.feed("Three. ") == []
    assert splitter.flush() == ["Three."]


def test_over_limit_is_cut_at_a_word_boundary() -> None:
    splitter = IncrementalSplitter("en", limit=20)
    out = splitter.feed("alpha beta gamma delta epsilon")
    assert out == ["alpha beta gamma"]
    assert splitter.flush() == ["delta epsilon"]
    assert whole("x" * 45, limit=20) == ["x" * 20, "x" * 20, "x" * 5]  # one long word: hard cut


def test_default_limit_per_language() -> None:
    text = "日本語の文章を書いています" * 20  # no punctuation at all
    segments = whole(text, "ja")
    assert [len(s) for s in segments] == [71, 71, 71, 47]
    assert IncrementalSplitter("zh-cn").limit == 82


def test_bad_limit() -> None:
    with pytest.raises(ParameterError):
        IncrementalSplitter("en", limit=0)
    with pytest.raises(ParameterError):
        split_sentences("text", "en", limit=0)


# --------------------------------------------------------------------------- split_sentences examples

SENTENCES = {
    "en": "Dr. Smith paid $3.50 for the coffee. Then he left the shop quickly! Why did he go?",
    "de": "Herr Müller kauft heute drei Äpfel im Laden. Das kostet 3,50 Euro! Ist das teuer?",
    "es": "El señor García compró tres manzanas hoy. ¡Costaron 3,50 euros! ¿Es caro eso?",
    "fr": "Monsieur Dupont a acheté trois pommes aujourd'hui. Cela coûte 3,50 euros ! Pourquoi ?",
    "pl": "Pan Kowalski kupił dziś trzy jabłka za 3.5 złotego. To drogo! Dlaczego tak?",
    "ru": "Господин Иванов купил сегодня три яблока. Это стоит 3,5 рубля! Почему так дорого?",
    "zh": "今天天气很好，我们去公园散步吧。价格是三点五元！你觉得怎么样？",
    "ja": "今日はとても良い天気ですね。公園に散歩に行きましょう！どう思いますか？",
    "ar": "ذهب الرجل إلى السوق واشترى ثلاث تفاحات. كان السعر مرتفعا! هل هذا غالي؟",
    "hi": "आज मौसम बहुत अच्छा है। चलो पार्क में टहलने चलते हैं! आपको क्या लगता है?",
    "ko": "오늘 날씨가 정말 좋네요. 공원에 산책하러 갈까요! 어떻게 생각하세요?",
    "hu": "Kovács úr ma három almát vett a boltban. Ez drága volt! Miért ilyen drága?",
}


@pytest.mark.parametrize("language", sorted(SENTENCES))
def test_split_sentences_long_text(language: str) -> None:
    text = " ".join([SENTENCES[language]] * 12)
    limit = char_limit(language)
    segments = split_sentences(text, language)
    assert len(segments) > 1
    check_segments(segments, text, limit)
    if language not in {"zh", "ja"}:
        assert " ".join(segments).split() == text.split()
    # greedy packing: no two neighbours would have fitted together
    assert all(len(a) + 1 + len(b) > limit for a, b in itertools.pairwise(segments))


def test_split_sentences_sentence_boundaries() -> None:
    text = " ".join(f"This is sentence number {i} of the text." for i in range(40))
    segments = split_sentences(text, "en")
    assert all(segment.endswith("of the text.") for segment in segments)


def test_split_sentences_short_text_is_one_piece() -> None:
    assert split_sentences("  Hello there. How are you?  ", "en") == ["Hello there. How are you?"]
    assert split_sentences("短い。", "ja") == ["短い。"]
    assert split_sentences(" \n ", "en") == []


def test_split_sentences_wraps_a_long_sentence() -> None:
    text = " ".join(["word"] * 100) + ". Short one."
    segments = split_sentences(text, "en", limit=50)
    assert all(len(s) <= 50 for s in segments)
    assert " ".join(segments).split() == text.split()


def test_split_sentences_keeps_decimals_together() -> None:
    # spaCy's Polish and Chinese pipelines split "3.5" into "3." and "5": undone here.
    for language in ("pl", "zh"):
        segments = split_sentences("Cena 3.5 zł. " * 30, language, limit=40)
        assert all("3.5" in s for s in segments)


def test_all_languages_split() -> None:
    for language in LANGUAGES:
        text = "Sentence one here. Sentence two here! " * 10
        check_segments(split_sentences(text, language, 60), text, 60)


@contextlib.contextmanager
def spacy_blocked() -> Iterator[None]:
    """spaCy unimportable, as on an install without the ``split`` extra."""
    before = sys.modules.get("spacy", NOT_IMPORTED)
    split._pipeline.cache_clear()
    split._has_spacy.cache_clear()
    sys.modules["spacy"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if before is NOT_IMPORTED:
            del sys.modules["spacy"]
        else:
            sys.modules["spacy"] = before  # type: ignore[assignment]
        split._pipeline.cache_clear()
        split._has_spacy.cache_clear()


NOT_IMPORTED = object()


@pytest.fixture
def without_spacy() -> Iterator[None]:
    with spacy_blocked():
        yield


@settings(max_examples=150, deadline=None)
@given(text=any_text, limit=st.integers(1, 80), language=st.sampled_from(["en", "de", "zh"]))
def test_without_spacy_any_text_keeps_the_contract(text: str, limit: int, language: str) -> None:
    with spacy_blocked():
        check_segments(split_sentences(text, language, limit), text, limit)


@pytest.mark.usefixtures("without_spacy")
def test_without_spacy_the_streaming_rules_split(caplog: pytest.LogCaptureFixture) -> None:
    assert split_sentences("short", "en") == ["short"]  # no spaCy needed
    text = "Dr. Smith arrived at 3.5 p.m. and sat down. " * 12 + "Then he left!"
    segments = split_sentences(text, "en", 100)
    check_segments(segments, text, 100)
    # Whole sentences packed two by two: no cut at "Dr.", "3.5" or "p.m.".
    sentence = "Dr. Smith arrived at 3.5 p.m. and sat down."
    assert segments == [f"{sentence} {sentence}"] * 6 + ["Then he left!"]
    assert segments == _packed(whole(text, "en", 100), 100)
    assert "pip install 'xtts-core[split]'" in caplog.text
    assert split_sentences("日本語。" * 40, "ja")  # its own punctuation rule, as with spaCy


@pytest.mark.usefixtures("without_spacy")
def test_without_spacy_long_sentences_are_wrapped_within_the_limit() -> None:
    text = "word " * 200
    segments = split_sentences(text, "de", 50)
    check_segments(segments, text, 50)
    assert len(segments) == 20


def _packed(sentences: list[str], limit: int) -> list[str]:
    """Whole sentences joined by one space while they fit (the test's own packing)."""
    packed: list[str] = []
    for sentence in sentences:
        if packed and len(packed[-1]) + 1 + len(sentence) <= limit:
            packed[-1] += " " + sentence
        else:
            packed.append(sentence)
    return packed


def test_all() -> None:
    assert sorted(split.__all__) == ["IncrementalSplitter", "SPACY_FALLBACKS", "split_sentences"]


def test_imports_without_spacy_or_torch() -> None:
    code = (
        "import sys, xtts_core.text.split, xtts_core.text.limits\n"
        "assert 'spacy' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
