"""XTTS's BPE tokenizer over a checkpoint's ``vocab.json``.

What the GPT hears: ``[<lang>]`` then the lower-cased text with every space replaced by the
``[SPACE]`` token, BPE-encoded by HuggingFace ``tokenizers``. Text that looks written in another
language's script is still encoded (unknown letters become ``[UNK]``) but logged as a warning. The text is first normalised as the
reference front end does (:func:`xtts_core.text.normalize.normalize`: numbers, abbreviations and
symbols spelt out, lower-cased). Language tags are looked up by their
string in the vocabulary, never by a hard-coded id (the released ids of ``[hu]``, ``[ko]`` and
``[hi]`` are not known to us); ``zh`` is tagged ``[zh-cn]`` and region suffixes are dropped
(``en-US`` -> ``en``). ``[START]``/``[STOP]`` are not added here: the GPT adds them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from xtts_core._extras import require_inference

require_inference("xtts_core.text.tokenizer")

from tokenizers import Tokenizer  # noqa: E402

from xtts_core.errors import (  # noqa: E402
    CheckpointError,
    TextError,
    TextTooLongError,
    UnsupportedLanguageError,
)
from xtts_core.text.limits import base_language  # noqa: E402
from xtts_core.text.normalize import normalize as normalize_text  # noqa: E402
from xtts_core.text.scripts import script_mismatch  # noqa: E402

logger = logging.getLogger(__name__)


def language_tag(language: str) -> str:
    """The vocabulary token of a language: ``[en]``, and ``[zh-cn]`` for Chinese."""
    base = base_language(language)
    return "[zh-cn]" if base == "zh" else f"[{base}]"


@dataclass(frozen=True)
class SpecialIds:
    """Ids of the tokens the GPT needs from the vocabulary."""

    start: int
    stop: int
    space: int
    unk: int


class XttsTokenizer:
    """Encode text for one XTTS checkpoint; knows which languages its vocabulary tags."""

    def __init__(self, tokenizer: Tokenizer, max_text_tokens: int | None = None) -> None:
        self._tok = tokenizer
        self.max_text_tokens = max_text_tokens
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        missing = [t for t in ("[START]", "[STOP]", "[SPACE]", "[UNK]") if t not in vocab]
        if missing:
            raise CheckpointError(f"vocab.json lacks the XTTS special tokens {missing}")
        self.special = SpecialIds(
            vocab["[START]"], vocab["[STOP]"], vocab["[SPACE]"], vocab["[UNK]"]
        )
        self.vocab_size = max(vocab.values()) + 1
        self._tags = {
            tok: idx for tok, idx in vocab.items() if tok.startswith("[") and _is_lang(tok)
        }

    @classmethod
    def from_file(cls, path: str | Path, max_text_tokens: int | None = None) -> XttsTokenizer:
        """Load ``vocab.json``; the error names the file when it is missing or malformed."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"vocab file not found: {path}")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises bare Exception subclasses
            raise CheckpointError(f"cannot read vocab file {path}: {exc}") from None
        return cls(tok, max_text_tokens)

    @property
    def languages(self) -> tuple[str, ...]:
        """Language codes tagged in the vocabulary (``zh-cn`` spelt as in config.json)."""
        return tuple(sorted(tag[1:-1] for tag in self._tags))

    def check_language(self, language: str) -> str:
        """The vocabulary tag of ``language``; the error lists the supported languages."""
        tag = language_tag(language)
        if tag not in self._tags:
            raise UnsupportedLanguageError(
                f"language {language!r} is not supported by this model; "
                f"supported: {', '.join(self.languages)}"
            )
        return tag

    def encode(self, text: str, language: str, *, normalize: bool = True) -> list[int]:
        """Token ids of ``text`` (language tag first), checked against the GPT's text limit;
        ``normalize`` off keeps numbers, abbreviations and symbols as written
        (``apply_text_normalization: off``)."""
        tag = self.check_language(language)
        base = base_language(language)
        clean = normalize_text(text, base, expand=normalize)
        if not any(char.isalnum() for char in clean):
            # Punctuation or emoji alone makes the GPT babble; there is nothing to say.
            raise TextError("text is empty: there is nothing to speak")
        ids: list[int] = self._tok.encode(tag + clean.replace(" ", "[SPACE]")).ids
        mismatch = script_mismatch(text, base)
        if mismatch is not None:
            logger.warning(
                "text looks like another language than %r (%s; %d unknown tokens): %.50r",
                language,
                mismatch,
                ids.count(self.special.unk),
                text,
            )
        if self.max_text_tokens is not None and len(ids) >= self.max_text_tokens:
            raise TextTooLongError(
                f"text encodes to {len(ids)} tokens; the model takes fewer than "
                f"{self.max_text_tokens} per segment: split the text into shorter sentences"
            )
        return ids


def _is_lang(token: str) -> bool:
    inner = token[1:-1]
    return (
        token.endswith("]") and inner not in {"START", "STOP", "SPACE", "UNK"} and inner.islower()
    )
