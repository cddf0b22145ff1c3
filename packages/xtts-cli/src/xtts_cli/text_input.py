"""Reading text from the user: ``--text``, ``--text-file`` (``-``: stdin), a pipe, or a file.

An empty text is a usage error here, so no command loads a model to speak nothing; a file that
cannot be read or is not UTF-8 is one line naming the file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from xtts_cli.errors import CliError, UsageError


def read_text(text: str | None, text_file: Path | None) -> str:
    """The text to speak from ``--text``, ``--text-file`` (``-``: stdin) or piped stdin."""
    if text is not None and text_file is not None:
        raise UsageError("give --text or --text-file, not both")
    if text is not None:
        content = text
    elif text_file is not None and str(text_file) != "-":
        content = read_utf8(text_file, "text file")
    elif text_file is not None or not sys.stdin.isatty():
        content = sys.stdin.read()
    else:
        raise UsageError("no text given and stdin is a terminal: pass the text or pipe it in")
    if not content.strip():
        raise UsageError("text is empty: there is nothing to speak")
    return content


def read_utf8(path: Path, what: str) -> str:
    """The content of ``path``; ``what`` names the file in the error (``"batch input"``)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(f"{what} {path} is not UTF-8") from None
