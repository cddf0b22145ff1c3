"""The CLI config file: defaults for any option, so daily use needs no flags.

A TOML file of ``option = value`` pairs (``model_dir = "/models/XTTS-v2"``, ``device =
"cuda"``, ``language = "de"``) read from ``--cli-config``, ``XTTS_CLI_CONFIG`` or
``$XDG_CONFIG_HOME/xtts/config.toml`` (``~/.config/xtts/config.toml``). Each key becomes the
default of that option in every command that has it (click's ``default_map``), so the command
line and environment variables still win. A key no command knows is an error, so a typo never
silently does nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from xtts_cli.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_ENV_VAR = "XTTS_CLI_CONFIG"


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/xtts/config.toml``, or under ``~/.config`` when that is unset."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "xtts" / "config.toml"


def read_config(path: Path) -> dict[str, Any]:
    """The file's key/value pairs (option names may use ``-`` or ``_``)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read CLI config {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"CLI config {path} is not valid TOML: {exc}") from None
    nested = [key for key, value in raw.items() if isinstance(value, dict)]
    if nested:
        raise UsageError(f"CLI config {path}: tables are not supported ({', '.join(nested)})")
    return {key.replace("-", "_"): value for key, value in raw.items()}


def config_defaults(group: Any, values: dict[str, Any], source: Path) -> dict[str, Any]:
    """click's nested ``default_map`` applying ``values`` to every command with such options.

    ``group`` is the root click group; it is walked by attribute (``commands``, ``params``)
    because Typer >= 0.26 ships its own copy of click, whose classes are private.
    """
    used: set[str] = set()

    def walk(command: Any) -> dict[str, Any]:
        subcommands = getattr(command, "commands", None)
        if subcommands is not None:
            return {name: walk(sub) for name, sub in subcommands.items()}
        names = {param.name for param in command.params}
        mine = {key: value for key, value in values.items() if key in names}
        used.update(mine)
        return mine

    tree = walk(group)
    unknown = sorted(set(values) - used)
    if unknown:
        raise UsageError(f"CLI config {source}: unknown option(s) {', '.join(unknown)}")
    return tree
