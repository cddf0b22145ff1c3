"""``grouped_options``: a dataclass parameter becomes that dataclass's flags, and back again.

The commands run in-process through the same click entry point ``xtts`` uses, so what is
checked here is what Typer really makes of the rewritten signature.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer

from xtts_cli.option_groups import grouped_options


@dataclass(frozen=True)
class Where:
    """A group with an environment variable and a path."""

    folder: Annotated[Path | None, typer.Option("--folder", envvar="TEST_GROUP_FOLDER")] = None
    depth: Annotated[int, typer.Option("--depth", min=0, help="How deep.")] = 1


@dataclass(frozen=True)
class How:
    """A second group, with a flag pair."""

    loud: Annotated[bool, typer.Option("--loud/--soft")] = False


def call(command: Any, *argv: str, default_map: dict[str, Any] | None = None) -> Any:
    """Run ``command`` as a one-command Typer app; return what the command returned."""
    app = typer.Typer()
    app.command()(command)
    click_command = typer.main.get_command(app)
    return click_command.main(
        list(argv), standalone_mode=False, prog_name="t", default_map=default_map
    )


@grouped_options
def show(name: str, *, where: Where, how: How, extra: int = 0) -> tuple[Any, ...]:
    return name, where, how, extra


def test_groups_become_flags_and_come_back_as_dataclasses() -> None:
    name, where, how, extra = call(show, "ann", "--folder", "/x", "--loud", "--extra", "2")
    assert (name, where, how, extra) == ("ann", Where(Path("/x"), 1), How(True), 2)
    assert call(show, "bob")[1:3] == (Where(None, 1), How(False))


def test_group_flags_keep_their_checks_env_vars_and_help(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_GROUP_FOLDER", "/from/env")
    assert call(show, "ann")[1] == Where(Path("/from/env"), 1)
    with pytest.raises(Exception, match="greater than or equal to 0") as failure:
        call(show, "ann", "--depth", "-1")
    assert getattr(failure.value, "exit_code", None) == 2  # click's usage error
    assert "--depth" in failure.value.format_message()  # type: ignore[attr-defined]
    out = io.StringIO()
    with redirect_stdout(out):
        assert call(show, "--help") == 0
    for flag in ("--folder", "--depth", "How deep.", "--loud", "--soft", "--extra"):
        assert flag in out.getvalue()


def test_group_fields_take_defaults_by_name_as_the_cli_config_file_sets_them() -> None:
    assert call(show, "ann", default_map={"depth": 5, "loud": True})[1:3] == (
        Where(None, 5),
        How(True),
    )


def test_a_name_used_twice_fails_when_the_command_is_defined() -> None:
    def clash(*, where: Where, depth: int = 0) -> None:
        del where, depth

    with pytest.raises(TypeError, match="used twice: depth"):
        grouped_options(clash)

    def named_like_a_field(*, folder: Where) -> None:
        del folder

    with pytest.raises(TypeError, match="used twice: folder"):
        grouped_options(named_like_a_field)
