"""``xtts text``: what the front end makes of a text, for people debugging how it will be read.

``normalize`` shows the spelt-out text the GPT reads, ``split`` the segments a long text is
spoken in, ``tokenize`` the token ids and pieces of a checkpoint's vocabulary. Without a model
the languages of the released XTTS-v2 are accepted; with ``--model-dir`` the vocabulary decides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from xtts_cli.model_files import ModelSource
from xtts_cli.option_groups import grouped_options
from xtts_cli.options import JsonOption, LanguageOption, ModelDirOption, TokenizerOption
from xtts_cli.text_input import read_text

app = typer.Typer(help="Show normalisation, segments and tokens of a text.", no_args_is_help=True)


@dataclass(frozen=True)
class TextQuery:
    """What every text command takes: the text, its language, an optional vocabulary, and
    whether to answer in JSON."""

    text: Annotated[
        str | None, typer.Argument(help="The text (default: read from stdin).", show_default=False)
    ] = None
    language: LanguageOption = "en"
    model_dir: ModelDirOption = None
    tokenizer: TokenizerOption = None
    as_json: JsonOption = False

    def content(self) -> str:
        """The text, or stdin when no text was given."""
        return read_text(self.text, None)

    def vocab(self) -> Path:
        """The checkpoint's vocab.json (required)."""
        return ModelSource(self.model_dir, tokenizer=self.tokenizer).vocab()

    def check_language(self) -> None:
        """The language is in the vocabulary, or without one among the released XTTS-v2's."""
        from xtts_core.config import XTTS_V2_LANGUAGES
        from xtts_core.errors import UnsupportedLanguageError
        from xtts_core.text.limits import base_language
        from xtts_core.text.tokenizer import XttsTokenizer

        if self.model_dir is not None or self.tokenizer is not None:
            XttsTokenizer.from_file(self.vocab()).check_language(self.language)
        elif base_language(self.language) not in {
            base_language(code) for code in XTTS_V2_LANGUAGES
        }:
            raise UnsupportedLanguageError(
                f"language {self.language!r} is not supported; "
                f"supported: {', '.join(XTTS_V2_LANGUAGES)}"
            )

    def emit(self, data: dict[str, Any], lines: list[str]) -> None:
        """``data`` as JSON under ``--json``, else ``lines``, on stdout."""
        typer.echo(
            json.dumps(data, ensure_ascii=False, indent=2) if self.as_json else "\n".join(lines)
        )


@app.command("normalize")
@grouped_options
def normalize(query: TextQuery) -> None:
    """The text as the GPT reads it: numbers, abbreviations and symbols spelt out."""
    from xtts_core.text.limits import base_language
    from xtts_core.text.normalize import normalize as normalize_text

    content = query.content()
    query.check_language()
    result = normalize_text(content, base_language(query.language))
    query.emit({"language": query.language, "text": content, "normalized": result}, [result])


@app.command("split")
@grouped_options
def split(
    query: TextQuery,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Characters per segment (default: the language's)."),
    ] = None,
) -> None:
    """The segments a long text is spoken in (sentences packed up to the character limit)."""
    from xtts_core.text.limits import char_limit
    from xtts_core.text.split import split_sentences

    content = query.content()
    query.check_language()
    size = limit or char_limit(query.language)
    segments = split_sentences(content, query.language, size)
    lines = [f"{i + 1:>3} ({len(s)} chars) {s}" for i, s in enumerate(segments)]
    query.emit({"language": query.language, "limit": size, "segments": segments}, lines)


@app.command("tokenize")
@grouped_options
def tokenize(query: TextQuery) -> None:
    """Token ids and pieces of the text in a checkpoint's vocab.json (language tag first)."""
    from tokenizers import Tokenizer

    from xtts_core.config import XttsConfig
    from xtts_core.text.limits import base_language
    from xtts_core.text.normalize import normalize as normalize_text
    from xtts_core.text.tokenizer import XttsTokenizer

    content = query.content()
    vocab = query.vocab()
    config = query.model_dir / "config.json" if query.model_dir is not None else None
    limit = (
        XttsConfig.from_json_file(config).gpt.max_text_tokens
        if config and config.is_file()
        else None
    )
    ids = XttsTokenizer.from_file(vocab, limit).encode(content, query.language)
    raw = Tokenizer.from_file(str(vocab))  # only for the pieces; XttsTokenizer checked the file
    pieces = [raw.id_to_token(i) or "" for i in ids]
    normalized = normalize_text(content, base_language(query.language))
    data = {"language": query.language, "normalized": normalized, "ids": ids, "pieces": pieces}
    lines = [normalized, " ".join(map(str, ids)), " ".join(pieces), f"{len(ids)} tokens"]
    query.emit(data, lines)
