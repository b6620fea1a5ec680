"""Study configs: a built-in YAML shipped in slmlab/studies/configs/, or the user's file, validated by
the study's pydantic model, with command-line overrides on top."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ValidationError

from slmlab.errors import UserError
from slmlab.validation import describe_error, parse_yaml_mapping, read_yaml_mapping


def load_config(name_or_path: str | None, builtins: dict[str, str], model: type[BaseModel], overrides: dict,
                example: str):  # fmt: skip
    """`name_or_path`: a key of `builtins` (None: 'default') or a YAML file; `overrides` that are not
    None replace the file's values."""
    name = name_or_path or "default"
    if name in builtins:
        data = resources.files("slmlab.studies").joinpath("configs", builtins[name]).read_bytes()
        source = f"built-in config '{name}'"
        values = parse_yaml_mapping(data, source, example)
    else:
        if not Path(name).is_file():
            raise UserError(f"config {name} not found: give a YAML file or one of {', '.join(builtins)}")
        source, values = name, read_yaml_mapping(name, example)
    values |= {key: value for key, value in overrides.items() if value is not None}
    try:
        return model(**values)
    except ValidationError as exc:
        raise UserError(describe_error(exc, source, model.model_fields)) from None
