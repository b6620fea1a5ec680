"""Reading configuration files and options: a YAML mapping, and pydantic's problems as one line.

Every config of slmlab (an eval, a study, a training run, an architecture JSON) is a pydantic model;
what goes wrong in one reads the same as in any other.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel, ValidationError

from slmlab.errors import UserError

OPTIONS = "options"  # the source of values given as command-line flags: problems name the flag


def describe_error(error: ValidationError, source: str, fields=None) -> str:
    """pydantic's problems as one line: where, what, and the value given (never the whole input).

    `fields`: the model's `model_fields`, or just the allowed names (None: not known). An
    unknown key is reported first, with the closest valid name (a misspelt `modle` otherwise shows
    up as "model: field required"); a required field that such a suggestion names is the same
    mistake, not one more problem. Every config loader (eval, studies, train, architectures) uses
    this, so the same mistake reads the same everywhere."""
    problems = _problems(error, fields, flags=source == OPTIONS)
    explained = {(p["parent"], p["suggestion"]) for p in problems if p["suggestion"]}
    problems = [p for p in problems if not (p["missing"] and (p["parent"], p["name"]) in explained)]
    first = problems[0]
    more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
    return f"{first['text']}{more}" if source == OPTIONS else f"{source}: {first['text']}{more}"


# pydantic names the member of a union that failed inside `loc` ('int', "literal['best']"): not a key.
_UNION_TAG = re.compile(r"^(int|float|str|bool|none|[a-z_-]+\[.*\])$")


def _problems(error: ValidationError, fields, flags: bool = False) -> list[dict]:
    """One entry per field in trouble, unknown keys first; a union's alternatives are merged."""
    grouped: dict[tuple, list[dict]] = {}
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p)))
        grouped.setdefault((item["type"] == "extra_forbidden", loc), []).append(item)
    problems = []
    for (unknown, loc), items in grouped.items():
        parent, name = loc[:-1], (loc[-1] if loc else None)
        prefix = ".".join(str(p) for p in parent)
        entry = {"unknown": unknown, "parent": parent, "name": name, "suggestion": None,
                 "missing": items[0]["type"] == "missing"}  # fmt: skip
        if unknown:
            allowed = list(_fields_at(fields, parent) or [])
            entry["suggestion"] = closest_name(str(name), allowed)
            where = f"'{prefix}.{name}'" if prefix else f"'{name}'"
            if entry["suggestion"]:
                meant = f"{prefix}.{entry['suggestion']}" if prefix else entry["suggestion"]
                hint = f" (did you mean '{meant}'?)"
            else:
                hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
            entry["text"] = f"unknown field {where}{hint}"
        elif entry["missing"]:
            where = f"'{prefix}.{name}'" if prefix else f"'{name}'"
            entry["text"] = f"missing required field {where}"
        else:
            where = ".".join(str(p) for p in loc)
            if flags and len(loc) == 1:  # a field given as a flag: name the flag the user typed
                where = "--" + str(loc[0]).replace("_", "-")
            messages = [_message(i) for i in items]
            text = messages[0] if len(messages) == 1 else " or ".join(dict.fromkeys(messages))
            entry["text"] = f"{where}: {text}" if where else text
            entry["text"] += _given(items[0]) if loc else ""  # a whole-config problem: no input shown
        problems.append(entry)
    problems.sort(key=lambda p: not p["unknown"])
    return problems


def _message(item: dict) -> str:
    message = item["msg"]
    if item["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    return message


def _given(item: dict) -> str:
    """The offending value when it is short and plain; a mapping or list would be the whole input."""
    value = item.get("input")
    if not isinstance(value, (str, int, float, bool)) or value is None:
        return ""
    shown = repr(value)
    return f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"


def closest_name(name: str, allowed: list[str]) -> str | None:
    """The valid field a mistyped key most likely meant: dashes for underscores, then difflib."""
    if name.replace("-", "_") in allowed:
        return name.replace("-", "_")
    lowered = {a.lower(): a for a in allowed}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def _fields_at(fields, parent: tuple):
    """The field names allowed at `parent` (a nested model, an item of a list of models), or None."""
    current = fields
    for part in parent:
        if isinstance(part, int) or current is None:
            continue
        if not isinstance(current, dict) or part not in current:
            return None
        model = _model_in(getattr(current[part], "annotation", None))
        current = model.model_fields if model is not None else None
    return current


def _model_in(annotation):
    """The pydantic model inside an annotation (`X`, `X | None`, `list[X]`, `dict[str, X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def read_yaml_mapping(path: str | Path, example: str) -> dict:
    """A YAML file of fields as a dict, or one clear line saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found")
    return parse_yaml_mapping(path.read_bytes(), str(path), example)


def parse_yaml_mapping(data: bytes, source: str, example: str) -> dict:
    try:
        values = yaml.safe_load(data.decode("utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{source} is not valid YAML{where}: {reason}") from None
    except UnicodeDecodeError:
        raise UserError(f"{source} is not UTF-8 text") from None
    if not isinstance(values, dict):
        raise UserError(f"{source} must be a YAML mapping of fields ({example})")
    return values
