"""Command-line flags made from a settings dataclass, so a command's defaults, types and help
live in one place (the dataclass and its ``Attributes:`` docstring).

``command_from_config(ClipTrainConfig, run)`` returns a function whose signature typer reads:
one ``--flag`` per field (``max_samples`` -> ``--max-samples``; booleans as
``--augment/--no-augment``), fields named in ``arguments`` as positional arguments, and the
help of each flag taken from the field's description.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

__all__ = ["command_from_config", "field_help"]


def field_help(cls: type) -> dict[str, str]:
    """The ``Attributes:`` section of a dataclass docstring as ``{field: first sentence}``."""
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^Attributes:\n(.*?)(?:^\S|\Z)", doc, flags=re.S | re.M)
    if not match:
        return {}
    helps: dict[str, str] = {}
    name = None
    for line in match.group(1).splitlines():
        entry = re.match(r"^    (\w+): (.*)$", line)
        if entry:
            name = entry.group(1)
            helps[name] = entry.group(2).strip()
        elif name and line.strip():
            helps[name] += " " + line.strip()
    return {k: _shorten(v) for k, v in helps.items()}


def _shorten(text: str, limit: int = 160) -> str:
    """The first sentence, at most ``limit`` characters (``--help`` stays readable)."""
    text = text.replace("``", "")
    # the first sentence ends at ". ", but not inside "e.g. " or "i.e. "
    text = re.split(r"(?<!\be\.g)(?<!\bi\.e)\. ", text)[0].rstrip(".")
    return text if len(text) <= limit else text[: limit - 3].rsplit(" ", 1)[0] + "..."


def command_from_config(
    config_cls: type, run: Callable[[Any], None], arguments: Sequence[str] = ()
) -> Callable[..., None]:
    """A typer command that builds ``config_cls`` from its flags and calls ``run(config)``."""
    hints = typing.get_type_hints(config_cls)
    helps = field_help(config_cls)
    params = []
    for field in dataclasses.fields(config_cls):
        flag = "--" + field.name.replace("_", "-")
        help_text = helps.get(field.name, "")
        required = field.default is dataclasses.MISSING
        default = ... if required else field.default
        if field.name in arguments:
            info = typer.Argument(help=help_text, show_default=not required,
                                  metavar=field.name.upper())
        elif hints[field.name] is bool:
            info = typer.Option(f"{flag}/--no-{flag[2:]}", help=help_text)
        else:
            info = typer.Option(flag, help=help_text, show_default=not required)
        params.append(inspect.Parameter(
            field.name, inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[hints[field.name], info],
            default=inspect.Parameter.empty if required else default,
        ))
    # typer wants positional arguments first
    params.sort(key=lambda p: p.name not in arguments)

    def command(**kwargs: Any) -> None:
        run(config_cls(**kwargs))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = (inspect.getdoc(config_cls) or "").split("\n\n")[0]
    return command
