"""XttsTokenizer over a real tokenizers BPE vocab.json (the one write_vocab writes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("tokenizers")

from xtts_core.config import XTTS_V2_LANGUAGES
from xtts_core.errors import (
    CheckpointError,
    TextError,
    TextTooLongError,
    UnsupportedLanguageError,
)
from xtts_core.text.tokenizer import XttsTokenizer, base_language, language_tag
from xtts_core.text.vocab import RELEASED_SPECIAL_IDS, build_vocab, write_vocab

if TYPE_CHECKING:
    from xtts_core.engine import XttsEngine

LIMIT = 402  # the released gpt_max_text_tokens


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vocab") / "vocab.json"
    write_vocab(path, 300)
    return path


@pytest.fixture(scope="module")
def tok(vocab_path: Path) -> XttsTokenizer:
    return XttsTokenizer.from_file(vocab_path, LIMIT)


def token_id(tok: XttsTokenizer, token: str) -> int:
    return tok._tok.token_to_id(token)


def test_special_ids_and_languages(tok: XttsTokenizer) -> None:
    vocab = build_vocab(300)
    assert tok.special.start == vocab["[START]"]
    assert tok.special.stop == vocab["[STOP]"]
    assert tok.special.space == vocab["[SPACE]"]
    assert tok.special.unk == vocab["[UNK]"]
    assert tok.vocab_size == 300
    assert tok.languages == tuple(sorted(XTTS_V2_LANGUAGES))


def test_encode_starts_with_the_language_tag_and_spells_spaces(tok: XttsTokenizer) -> None:
    ids = tok.encode("Hi  there\n", "en")
    assert ids[0] == token_id(tok, "[en]")
    space = tok.special.space
    assert ids[1:] == [token_id(tok, c) for c in "hi"] + [space] + [
        token_id(tok, c) for c in "there"
    ]
    assert tok.special.unk not in ids


@pytest.mark.parametrize("language", ["en", "EN", "en-US", "en_gb", " en "])
def test_region_suffix_and_case_are_dropped(tok: XttsTokenizer, language: str) -> None:
    assert tok.encode("ok", language)[0] == token_id(tok, "[en]")


@pytest.mark.parametrize("language", ["zh", "zh-cn", "zh-CN", "zh-tw", "ZH"])
def test_chinese_is_tagged_zh_cn(tok: XttsTokenizer, language: str) -> None:
    assert tok.encode("ok", language)[0] == token_id(tok, "[zh-cn]")


@pytest.mark.parametrize("language", sorted(set(XTTS_V2_LANGUAGES) - {"zh-cn"}))
def test_every_released_language_is_tagged_by_its_string(tok: XttsTokenizer, language: str) -> None:
    assert tok.encode("a", language)[0] == token_id(tok, f"[{language}]")


def test_language_helpers() -> None:
    assert base_language("pt-BR") == "pt"
    assert base_language("zh-cn") == "zh"
    assert language_tag("zh") == "[zh-cn]"
    assert language_tag("fr-CA") == "[fr]"


@pytest.mark.parametrize("language", ["xx", "klingon", "", "e n"])
def test_unsupported_language_lists_the_supported_ones(tok: XttsTokenizer, language: str) -> None:
    with pytest.raises(UnsupportedLanguageError) as info:
        tok.encode("hello", language)
    message = str(info.value)
    assert repr(language) in message
    assert "supported: " + ", ".join(sorted(XTTS_V2_LANGUAGES)) in message
    assert isinstance(info.value, TextError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text", ["", " ", "\n\t  \r\n", "!!!", "...", "😀 🎉", "« — »"])
def test_text_with_nothing_to_speak_is_a_text_error(tok: XttsTokenizer, text: str) -> None:
    with pytest.raises(TextError, match="text is empty"):
        tok.encode(text, "en")


def test_text_over_the_limit_says_the_limit(tok: XttsTokenizer) -> None:
    # char-level vocab: the tag plus one id per letter
    assert len(tok.encode("a" * (LIMIT - 2), "en")) == LIMIT - 1
    with pytest.raises(TextTooLongError, match=f"encodes to {LIMIT} tokens.*fewer than {LIMIT}"):
        tok.encode("a" * (LIMIT - 1), "en")
    with pytest.raises(TextTooLongError, match=f"fewer than {LIMIT}") as info:
        tok.encode("word " * 1000, "en")
    assert isinstance(info.value, TextError)


def test_no_limit_when_none_given(vocab_path: Path) -> None:
    unlimited = XttsTokenizer.from_file(vocab_path)
    assert len(unlimited.encode("a" * 1000, "en")) == 1001


def test_limit_comes_from_the_config(engine: XttsEngine) -> None:
    # the loaded tokenizer carries gpt_max_text_tokens from config.json
    assert engine.tokenizer.max_text_tokens == engine.config.gpt.max_text_tokens == LIMIT


@pytest.mark.parametrize("dropped", ["[START]", "[STOP]", "[SPACE]", "[UNK]"])
def test_vocab_without_a_special_token(tmp_path: Path, vocab_path: Path, dropped: str) -> None:
    doc = json.loads(vocab_path.read_text(encoding="utf-8"))
    doc["added_tokens"] = [t for t in doc["added_tokens"] if t["content"] != dropped]
    del doc["model"]["vocab"][dropped]
    if dropped == "[UNK]":
        doc["model"]["unk_token"] = None
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(CheckpointError, match="lacks the XTTS special tokens") as info:
        XttsTokenizer.from_file(path)
    assert dropped in str(info.value)


def test_missing_vocab_names_it(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="vocab file not found") as info:
        XttsTokenizer.from_file(tmp_path / "vocab.json")
    assert str(tmp_path / "vocab.json") in str(info.value)


@pytest.mark.parametrize("content", ["", "{}", "not json", '{"model": {"type": "Nope"}}'])
def test_malformed_vocab_names_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "vocab.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CheckpointError, match="cannot read vocab file") as info:
        XttsTokenizer.from_file(path)
    assert str(path) in str(info.value)


def test_vocab_without_some_language_tags(tmp_path: Path, vocab_path: Path) -> None:
    doc = json.loads(vocab_path.read_text(encoding="utf-8"))
    for tag in ("[hu]", "[ko]"):
        doc["added_tokens"] = [t for t in doc["added_tokens"] if t["content"] != tag]
        del doc["model"]["vocab"][tag]
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    tok = XttsTokenizer.from_file(path)
    assert "hu" not in tok.languages
    assert len(tok.languages) == 15
    with pytest.raises(UnsupportedLanguageError, match="'hu'"):
        tok.encode("szia", "hu")


def test_release_size_vocab_keeps_the_released_ids(tmp_path: Path) -> None:
    write_vocab(tmp_path / "vocab.json", 6681)
    tok = XttsTokenizer.from_file(tmp_path / "vocab.json")
    assert tok.vocab_size == 6681
    for token, idx in RELEASED_SPECIAL_IDS.items():
        assert token_id(tok, token) == idx
    assert (tok.special.start, tok.special.stop, tok.special.space) == (261, 0, 2)


def test_too_small_vocab_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        build_vocab(30)
