"""Command-line options derived from a config model's fields: the flag, its type, its help text and
the default it shows all come from the field, so a setting is declared once (slmlab.pipeline.settings)
and a command only passes on what the user gave."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Literal

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from rich.markup import escape


def _value_type(annotation) -> type:
    """The type the flag parses: Literal and str choices as str, Optional[T] as T, list[T] as list[T]."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is Literal:
        return type(typing.get_args(annotation)[0])
    return annotation


def _help(field, name: str) -> str:
    """The field's description and its default, as `[default]`; escaped, since typer renders help
    as rich markup, where `[auto]` would be read as a style and vanish."""
    text = field.description or name.replace("_", " ")
    default = field.get_default(call_default_factory=True)
    if default is not None and default is not PydanticUndefined and not isinstance(default, bool) and "[" not in text:
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        text += f" [{shown}]"
    return escape(text)


def options_from(config: type[BaseModel], order: Iterable[str], as_text: Iterable[str] = ()) -> list[inspect.Parameter]:
    """One keyword option per field of `config`, in `order`. A required field is a required option;
    every other one defaults to None (not given). Fields in `as_text` are read as one comma-separated
    text (`--k 1,10`); a boolean whose default is true gets its `--no-` twin."""
    fields, as_text = config.model_fields, set(as_text)
    parameters = []
    for name in order:
        field = fields[name]
        kind = str if name in as_text else _value_type(field.annotation)
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            names = (f"{flag}/--no-{flag[2:]}",) if field.default is True else (flag,)
            option = typer.Option(*names, help=_help(field, name))
        else:
            option = typer.Option(flag, help=_help(field, name))
        required = field.is_required()
        annotation = Annotated[kind if required else kind | None, option]
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                            default=inspect.Parameter.empty if required else None))  # fmt: skip
    return parameters


def command_from(config: type[BaseModel], order: Iterable[str], run: Callable[[dict], None], doc: str,
                 as_text: Iterable[str] = ()) -> Callable:  # fmt: skip
    """A typer command whose options are `config`'s fields; `run` gets the options the user gave."""

    def command(**given) -> None:
        run({name: value for name, value in given.items() if value is not None and value != []})

    command.__signature__ = inspect.Signature(options_from(config, order, as_text))
    command.__doc__ = doc
    return command
