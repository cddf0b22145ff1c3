"""How failures become exit codes: 2 for what the user asked wrongly, 1 for what went wrong.

Every command raises either :class:`CliError` (its own checks) or an xtts-core
:class:`~xtts_core.errors.XttsError`; :func:`exit_code` maps both, and ``main`` prints the
message as one line on stderr. Usage (2) covers bad flags and values, text the model cannot speak
(empty, unsupported language, too long), unknown speakers and output names; runtime (1) covers
files that are missing or unreadable, devices, and everything else.
"""

from __future__ import annotations

from xtts_core.errors import ParameterError, TextError

#: Exit status of a bad command line or bad input.
USAGE = 2
#: Exit status of a failure while doing what was asked.
RUNTIME = 1


class CliError(Exception):
    """A failure the CLI detected itself; the message is printed as it is."""

    exit_code = RUNTIME


class UsageError(CliError):
    """The command line or its input is wrong (exit status 2)."""

    exit_code = USAGE


def exit_code(exc: BaseException) -> int:
    """The exit status for an exception raised by a command."""
    if isinstance(exc, CliError):
        return exc.exit_code
    return USAGE if isinstance(exc, (TextError, ParameterError)) else RUNTIME
