"""Wrong-script detection: text in another language's script still encodes, with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xtts_core.text.scripts import LANGUAGE_SCRIPTS, letter_script, script_mismatch


@pytest.mark.parametrize(
    ("char", "script"),
    [
        ("a", "LATIN"),
        ("É", "LATIN"),
        ("Ａ", "LATIN"),  # full-width
        ("я", "CYRILLIC"),
        ("ب", "ARABIC"),
        ("क", "DEVANAGARI"),
        ("中", "CJK"),
        ("の", "HIRAGANA"),
        ("カ", "KATAKANA"),
        ("ｶ", "KATAKANA"),  # half-width
        ("ー", "KATAKANA"),  # prolonged sound mark
        ("한", "HANGUL"),
        ("1", None),
        (" ", None),
        ("!", None),
        ("😀", None),
    ],
)
def test_letter_script(char: str, script: str | None) -> None:
    assert letter_script(char) == script


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Hello there, 42 times!", "en"),
        ("Привет, как дела? iPhone 15", "ru"),
        ("मेरा नाम राम है", "hi"),
        ("今日は良い天気ですね。", "ja"),
        ("我爱北京天安门 CCTV", "zh"),
        ("안녕하세요 漢字", "ko"),
        ("مرحبا بالعالم", "ar"),
        ("", "en"),
        ("123 !?", "ru"),
        ("text", "xx"),  # unknown language: nothing to compare with
    ],
)
def test_matching_scripts_pass(text: str, language: str) -> None:
    assert script_mismatch(text, language) is None


@pytest.mark.parametrize(
    ("text", "language", "reason"),
    [
        ("Привет", "en", "letters in cyrillic script"),
        ("hello Привет 中", "fr", "letters in cjk, cyrillic script"),
        ("Hello, how are you?", "ru", "mostly latin letters"),
        ("Good morning", "ja", "mostly latin letters"),
        ("こんにちは", "zh", "letters in hiragana script"),
        ("Доброе утро", "ko", "letters in cyrillic script"),
    ],
)
def test_wrong_scripts_are_named(text: str, language: str, reason: str) -> None:
    assert script_mismatch(text, language) == reason


def test_every_language_has_its_scripts() -> None:
    from xtts_core.config import XTTS_V2_LANGUAGES
    from xtts_core.text.limits import base_language

    assert {base_language(lang) for lang in XTTS_V2_LANGUAGES} == set(LANGUAGE_SCRIPTS)


@given(text=st.text(max_size=80), language=st.sampled_from(sorted(LANGUAGE_SCRIPTS)))
def test_never_raises_and_always_explains(text: str, language: str) -> None:
    reason = script_mismatch(text, language)
    assert reason is None or reason == "mostly latin letters" or reason.startswith("letters in ")
    if reason is None:
        assert script_mismatch(text + "Ω", language) is not None  # Greek is nobody's script


def test_tokenizer_encodes_wrong_script_text_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("tokenizers")
    from xtts_core.text.tokenizer import XttsTokenizer
    from xtts_core.text.vocab import write_vocab

    write_vocab(tmp_path / "vocab.json", 300)
    tok = XttsTokenizer.from_file(tmp_path / "vocab.json", 402)
    with caplog.at_level(logging.WARNING, logger="xtts_core.text.tokenizer"):
        ids = tok.encode("Hi 中中 あ", "en")
    assert len(ids) == 1 + len("hi 中中 あ")  # tag, then one token per character
    assert ids.count(tok.special.unk) == 3  # the test vocab has neither kanji nor kana
    [record] = caplog.records
    assert "'en'" in record.getMessage()
    assert "letters in cjk, hiragana script; 3 unknown tokens" in record.getMessage()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="xtts_core.text.tokenizer"):
        tok.encode("Hello world", "en")
    assert caplog.records == []
