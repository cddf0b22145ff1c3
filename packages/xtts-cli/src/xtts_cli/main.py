"""The ``xtts`` command: the Typer app, global options and the one place errors are printed.

Commands raise; :func:`main` turns every exception into one line on stderr (``xtts: error:
...``) and an exit status (2: usage, 1: runtime; see :mod:`xtts_cli.errors`). ``--debug`` shows
the traceback instead. The command modules import torch only inside their functions, so
``xtts --help`` and usage errors stay fast.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Protocol, TypeGuard

import typer

from xtts_cli.__about__ import __version__
from xtts_cli.commands import batch, bench, model, synth, text, voice
from xtts_cli.console import state
from xtts_cli.errors import RUNTIME, exit_code
from xtts_cli.settings import CONFIG_ENV_VAR, config_defaults, default_config_path, read_config

app = typer.Typer(
    name="xtts",
    help="XTTS-v2 text to speech: synthesise, stream, clone voices, run batches, manage models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("synth", no_args_is_help=True)(synth.synth)
app.command("batch", no_args_is_help=True)(batch.batch)
app.command("bench")(bench.bench)
app.add_typer(model.app, name="model")
app.add_typer(voice.app, name="voice")
app.add_typer(text.app, name="text")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"xtts {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    cli_config: Annotated[
        Path | None,
        typer.Option(
            "--cli-config",
            envvar=CONFIG_ENV_VAR,
            help="TOML file of option defaults (default: ~/.config/xtts/config.toml).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """XTTS-v2 text to speech from the command line."""
    state.quiet = quiet
    state.debug = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    path = cli_config or default_config_path()
    if cli_config is not None or path.is_file():
        ctx.default_map = config_defaults(ctx.command, read_config(path), path)


class _ClickError(Protocol):
    """What click's exceptions offer (see :func:`_is_click_error`)."""

    exit_code: int

    def format_message(self) -> str: ...


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return text or type(exc).__name__


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run ``xtts`` and exit with its status."""
    command = typer.main.get_command(app)
    # `kill` unwinds like Ctrl-C, so partial output files are removed (see xtts_cli.output).
    signal.signal(signal.SIGTERM, _terminate)
    try:
        status = command.main(argv, prog_name="xtts", standalone_mode=False)
    except typer.Abort:
        print("xtts: aborted", file=sys.stderr)
        sys.exit(RUNTIME)
    except BrokenPipeError:  # the reader of `-o -` went away (`| head`): not worth a message
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit flush
        sys.exit(RUNTIME)
    except Exception as exc:
        if _is_click_error(exc):  # bad flags: click's message, plus where to find help
            message = " ".join(exc.format_message().split())
            ctx = getattr(exc, "ctx", None)
            if message:  # empty after `no_args_is_help` printed the help
                where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                print(f"xtts: error: {message}{where}", file=sys.stderr)
            sys.exit(exc.exit_code)
        if state.debug:
            raise
        print(f"xtts: error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(exit_code(exc))
    sys.exit(status if isinstance(status, int) else 0)


def _terminate(signum: int, frame: object) -> None:
    del frame
    sys.exit(128 + signum)


def _is_click_error(exc: BaseException) -> TypeGuard[_ClickError]:
    """click's own errors (usage, bad parameter); matched by interface, as Typer >= 0.26 ships a
    private copy of click whose exception classes cannot be imported."""
    return callable(getattr(exc, "format_message", None)) and isinstance(
        getattr(exc, "exit_code", None), int
    )
