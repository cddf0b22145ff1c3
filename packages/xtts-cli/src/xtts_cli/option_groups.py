"""Option groups: a frozen dataclass of Typer options that a command takes as one parameter.

A command declares a parameter such as ``engine: EngineOptions`` and is wrapped by
:func:`grouped_options`, which puts the group's fields into the command's signature where that
parameter stood. Typer then sees ordinary options (with their help panels and environment
variables), the CLI config file's ``default_map`` finds them by name, and on every call the
wrapper builds the group back from them. An option added to a group therefore appears in every
command that takes the group. The invariant a changer must keep: every field has an
``Annotated[..., typer.Option(...)]`` type and a default, and the names of fields, groups and
plain parameters of one command are all different (a clash fails when the command is defined).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")


def grouped_options(command: Callable[..., R]) -> Callable[..., R]:
    """``command`` with each dataclass-typed parameter spread into that dataclass's fields."""
    signature = inspect.signature(command, eval_str=True)
    groups: dict[str, tuple[type[Any], list[str]]] = {}
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        group = parameter.annotation
        if not (isinstance(group, type) and dataclasses.is_dataclass(group)):
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        hints = typing.get_type_hints(group, include_extras=True)
        fields = dataclasses.fields(group)
        groups[parameter.name] = (group, [field.name for field in fields])
        parameters += [
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field.default,
                annotation=hints[field.name],
            )
            for field in fields
        ]
    names = [parameter.name for parameter in parameters] + list(groups)
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise TypeError(f"{command.__qualname__}: option names used twice: {', '.join(clashes)}")

    @functools.wraps(command)
    def run(**values: Any) -> R:
        for name, (group, fields) in groups.items():
            values[name] = group(**{field: values.pop(field) for field in fields})
        return command(**values)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return run
