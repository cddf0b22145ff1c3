"""Write a character-level XTTS ``vocab.json`` for random test checkpoints.

Real XTTS-v2 vocabularies are BPE with merges; ours has no merges, so every word is spelt letter
by letter. That only lengthens prompts, and it exercises the exact code path a real vocab takes
(tokenizers BPE + Whitespace pre-tokenizer + added special tokens).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from xtts_core.config import XTTS_V2_LANGUAGES

#: Ids of the released v1.1 vocabulary that are known; the rest are placed where free.
RELEASED_SPECIAL_IDS = {
    "[STOP]": 0, "[UNK]": 1, "[SPACE]": 2, "[en]": 259, "[de]": 260, "[START]": 261, "[fr]": 262,
    "[ru]": 267, "[es]": 284, "[it]": 285, "[pt]": 286, "[cs]": 293, "[pl]": 294, "[tr]": 295,
    "[nl]": 297, "[ar]": 5022, "[zh-cn]": 5023, "[ja]": 5412,
}  # fmt: skip

_CHARACTERS = (
    string.ascii_lowercase + string.digits + ".,!?;:'\"-()&@%#$£€°/"
    + "áàâäãåæçéèêëíìîïñóòôöõøœßúùûüýÿąćęłńśźżčďěňřšťůžğışőű"
    + "абвгдеёжзийклмнопрстуфхцчшщъыьэюя" + "αβγδεζηθικλμνξοπρστυφχψω"
    + "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
)  # fmt: skip


def specials() -> list[str]:
    """The added tokens every XTTS vocab carries: control tokens and the 17 language tags."""
    return ["[STOP]", "[UNK]", "[SPACE]", "[START]", *(f"[{lang}]" for lang in XTTS_V2_LANGUAGES)]


def build_vocab(size: int) -> dict[str, int]:
    """Token -> id for a vocab of ``size`` ids: released special ids where they fit, else dense."""
    tokens = specials()
    if size < len(tokens) + 40:
        raise ValueError(f"a vocab needs at least {len(tokens) + 40} ids, got {size}")
    vocab: dict[str, int] = {}
    if size > max(RELEASED_SPECIAL_IDS.values()):
        vocab.update(RELEASED_SPECIAL_IDS)
    free = (i for i in range(size) if i not in vocab.values())
    for tok in tokens:
        if tok not in vocab:
            vocab[tok] = next(free)
    chars = iter(dict.fromkeys(_CHARACTERS))
    for idx in free:
        ch = next(chars, None)
        vocab[ch if ch is not None else f"<filler{idx}>"] = idx
    return vocab


def write_vocab(path: Path, size: int) -> None:
    """Write a tokenizers-format BPE ``vocab.json`` of exactly ``size`` ids."""
    vocab = build_vocab(size)
    added: list[dict[str, object]] = [
        {"id": vocab[tok], "content": tok, "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True}
        for tok in specials()
    ]  # fmt: skip
    doc: dict[str, object] = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": sorted(added, key=lambda t: int(str(t["id"]))),
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {
            "type": "BPE", "dropout": None, "unk_token": "[UNK]", "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": False, "vocab": vocab, "merges": [],
        },
    }  # fmt: skip
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
