"""Where messages go: everything for people on stderr, so stdout stays free for audio and data.

``-o -`` writes raw PCM to stdout and ``--json`` writes JSON there; status lines, summaries and
progress bars must never mix into either, so they all use the stderr console below. ``--quiet``
silences status lines and progress (errors are still printed by ``main``).
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

#: The stderr console every command reports through.
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class _State:
    """Global flags of the current run (set once by the root command)."""

    quiet = False
    debug = False


state = _State()


def info(message: str) -> None:
    """A status line on stderr (markup off: paths with brackets print as they are)."""
    if not state.quiet:
        stderr.print(message, markup=False)


def progress() -> Progress:
    """A progress bar on stderr; disabled under ``--quiet`` or when stderr is not a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=state.quiet or not stderr.is_terminal,
    )
