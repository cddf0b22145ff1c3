"""xtts-cli: the ``xtts`` command line for XTTS-v2 (see ``xtts --help``).

The public API is the entry point and its Typer app (for embedding the commands or calling
``main(argv)`` from Python), the exceptions a command raises for exit statuses 1 and 2, and the
version. Importing this package (or running ``xtts --help``) never imports torch: the
model-facing modules of xtts-core are imported inside the commands that need them.
"""

from xtts_cli.__about__ import __version__
from xtts_cli.errors import CliError, UsageError
from xtts_cli.main import app, main

__all__ = ["CliError", "UsageError", "__version__", "app", "main"]
