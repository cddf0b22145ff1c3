"""``xtts text``: what the front end makes of a text, for people debugging how it will be read.

``normalize`` shows the spelt-out text the GPT reads, ``split`` the segments a long text is
spoken in, ``tokenize`` the token ids and pieces of a checkpoint's vocabulary. Without a model
the languages of the released XTTS-v2 are accepted; with ``--model-dir`` the vocabulary decides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from xtts_cli.commands.synth import read_text
from xtts_cli.options import (
    JsonOption,
    LanguageOption,
    ModelDirOption,
    ModelSource,
    TokenizerOption,
)

app = typer.Typer(help="Show normalisation, segments and tokens of a text.", no_args_is_help=True)

TextArgument = Annotated[
    str | None, typer.Argument(help="The text (default: read from stdin).", show_default=False)
]


def _check_language(language: str, vocab: Path | None) -> None:
    from xtts_core.config import XTTS_V2_LANGUAGES
    from xtts_core.errors import UnsupportedLanguageError
    from xtts_core.text.limits import base_language
    from xtts_core.text.tokenizer import XttsTokenizer

    if vocab is not None:
        XttsTokenizer.from_file(vocab).check_language(language)
    elif base_language(language) not in {base_language(code) for code in XTTS_V2_LANGUAGES}:
        raise UnsupportedLanguageError(
            f"language {language!r} is not supported; supported: {', '.join(XTTS_V2_LANGUAGES)}"
        )


def _vocab(model_dir: Path | None, tokenizer: Path | None) -> Path | None:
    if model_dir is None and tokenizer is None:
        return None
    return ModelSource(model_dir, tokenizer=tokenizer).vocab()


def _emit(as_json: bool, data: dict[str, Any], lines: list[str]) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2) if as_json else "\n".join(lines))


@app.command("normalize")
def normalize(
    text: TextArgument = None,
    language: LanguageOption = "en",
    model_dir: ModelDirOption = None,
    tokenizer: TokenizerOption = None,
    as_json: JsonOption = False,
) -> None:
    """The text as the GPT reads it: numbers, abbreviations and symbols spelt out."""
    from xtts_core.text.limits import base_language
    from xtts_core.text.normalize import normalize as normalize_text

    content = read_text(text, None)
    _check_language(language, _vocab(model_dir, tokenizer))
    result = normalize_text(content, base_language(language))
    _emit(as_json, {"language": language, "text": content, "normalized": result}, [result])


@app.command("split")
def split(
    text: TextArgument = None,
    language: LanguageOption = "en",
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Characters per segment (default: the language's)."),
    ] = None,
    model_dir: ModelDirOption = None,
    tokenizer: TokenizerOption = None,
    as_json: JsonOption = False,
) -> None:
    """The segments a long text is spoken in (sentences packed up to the character limit)."""
    from xtts_core.text.limits import char_limit
    from xtts_core.text.split import split_sentences

    content = read_text(text, None)
    _check_language(language, _vocab(model_dir, tokenizer))
    size = limit or char_limit(language)
    segments = split_sentences(content, language, size)
    lines = [f"{i + 1:>3} ({len(s)} chars) {s}" for i, s in enumerate(segments)]
    _emit(as_json, {"language": language, "limit": size, "segments": segments}, lines)


@app.command("tokenize")
def tokenize(
    text: TextArgument = None,
    language: LanguageOption = "en",
    model_dir: ModelDirOption = None,
    tokenizer: TokenizerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Token ids and pieces of the text in a checkpoint's vocab.json (language tag first)."""
    from tokenizers import Tokenizer

    from xtts_core.config import XttsConfig
    from xtts_core.text.limits import base_language
    from xtts_core.text.normalize import normalize as normalize_text
    from xtts_core.text.tokenizer import XttsTokenizer

    content = read_text(text, None)
    source = ModelSource(model_dir, tokenizer=tokenizer)
    vocab = source.vocab()
    config = model_dir / "config.json" if model_dir is not None else None
    limit = (
        XttsConfig.from_json_file(config).gpt.max_text_tokens
        if config and config.is_file()
        else None
    )
    ids = XttsTokenizer.from_file(vocab, limit).encode(content, language)
    raw = Tokenizer.from_file(str(vocab))  # only for the pieces; XttsTokenizer checked the file
    pieces = [raw.id_to_token(i) or "" for i in ids]
    normalized = normalize_text(content, base_language(language))
    data = {"language": language, "normalized": normalized, "ids": ids, "pieces": pieces}
    lines = [normalized, " ".join(map(str, ids)), " ".join(pieces), f"{len(ids)} tokens"]
    _emit(as_json, data, lines)
