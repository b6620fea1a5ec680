"""How the command line meets a person: usage mistakes as one line, help pages that read well.

typer (>= 0.29) runs on a copy of click of its own (`typer._click`), whose exceptions are not
`click.ClickException`; both kinds are handled here, so a typer that goes back to plain click still
gives one line. The help pages are adjusted on the click command tree typer builds, in one place,
rather than by repeating a metavar or a short help on each of the ~60 options.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator, Sequence

# Readable value names in help pages instead of typer's `<str>`, `<int>`, `<list[str]>`.
_METAVARS = {"<str>": "TEXT", "<int>": "N", "<float>": "X", "<path>": "PATH", "<list[str]>": "TEXT"}


def _click_modules() -> list:
    modules = []
    try:
        from typer import _click

        modules.append(_click)
    except ImportError:  # a typer that uses plain click
        pass
    try:
        import click

        modules.append(click)
    except ImportError:
        pass
    return modules


def usage_error_types() -> tuple[type[BaseException], ...]:
    return tuple(m.exceptions.UsageError for m in _click_modules())


def no_args_help_types() -> tuple[type[BaseException], ...]:
    return tuple(getattr(m.exceptions, "NoArgsIsHelpError", ()) for m in _click_modules()
                 if hasattr(m.exceptions, "NoArgsIsHelpError"))  # fmt: skip


def other_click_error_types() -> tuple[type[BaseException], ...]:
    """click's non-usage errors (a file it could not open) and its Abort (Ctrl-D at a prompt)."""
    import typer

    found = [typer.Abort] + [m.exceptions.ClickException for m in _click_modules()]
    found += [m.exceptions.Abort for m in _click_modules() if hasattr(m.exceptions, "Abort")]
    return tuple(found)


def walk(command, path: str = "") -> Iterator[tuple[str, object]]:
    """Every command of the tree with its path ('slmlab study lora')."""
    path = path or command.name
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, f"{path} {name}")


def _reflow(text: str | None) -> str | None:
    """One line per paragraph: docstrings are wrapped for the source, and a help page keeps the
    source's line breaks, which then fall mid-sentence in the narrower help column."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def polish_help(root) -> None:
    """Flags show no value name (they take none); other options a short one; help text reflowed."""
    for _, command in walk(root):
        command.help = _reflow(command.help)
        if command.short_help:
            command.short_help = _reflow(command.short_help)
        params = list(command.params)
        try:  # --help, made on demand and then kept by the command
            params.append(command.get_help_option(type(command).context_class(command)))
        except Exception:  # an older click without that cache: it keeps its default look
            pass
        for param in params:
            if param is None:
                continue
            if getattr(param, "param_type_name", "") == "argument":
                param.metavar = param.metavar or param.name.upper()  # its name, as usage lines show it
            elif getattr(param, "is_flag", False) or getattr(param, "count", False):
                param.metavar = ""
            elif param.metavar is None:
                try:
                    shown = param.display_type_rich(ctx=None)  # typer's own label, e.g. <int>
                except Exception:  # an older typer: keep its default
                    continue
                if shown in _METAVARS:
                    param.metavar = _METAVARS[shown]


def _given_value(param, argv: Sequence[str]) -> str | None:
    """The text the user typed for this option, to repeat it in the message."""
    names = list(getattr(param, "opts", ())) + list(getattr(param, "secondary_opts", ()))
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1 :]
    return None


def usage_line(error, argv: Sequence[str]) -> str:
    """A click usage error as one line: what was wrong, the closest valid choice, where to look."""
    ctx = getattr(error, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else " (see 'slmlab --help')"
    possibilities = sorted(getattr(error, "possibilities", None) or ())
    if hasattr(error, "option_name") and type(error).__name__ == "NoSuchOption":
        text = f"no such option {error.option_name}"
        if possibilities:
            text += f"; did you mean {' or '.join(possibilities[:3])}?"
    else:
        text = error.format_message()
        param = getattr(error, "param", None)
        given = _given_value(param, argv) if param is not None else None
        if given is not None and repr(given) not in text and f"'{given}'" not in text:
            text = text.rstrip(".") + f" (got {given!r})"
    text = re.sub(r"\s+", " ", text).strip().rstrip(".")
    return f"{text[:1].lower()}{text[1:]}{where}"
