"""Help pages that stay readable in an 80-column terminal.

Typer's rich tables give every option six columns and truncate long flag names
(``--stability-sco…``) at 80 columns, so a user cannot read the flag to type it. Our commands
use click's plain layout instead, which always prints a flag whole (moving its help to the next
line when the flag is long), grouped into named sections: an option's ``rich_help_panel``
names its section, so a command with 25 options reads as "Models", "Selection",
"SAM proposals" rather than one long list.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand

__all__ = ["HELP_WIDTH", "PanelCommand", "new_app"]

#: the help text never grows wider than this, whatever the terminal
HELP_WIDTH = 100


class PanelCommand(TyperCommand):
    """A command whose help lists its arguments, then one section per options panel."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        # typer vendors its own click: ctx and formatter are typer._click objects
        arguments: list[tuple[str, str]] = []
        panels: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append(record)
            else:
                panel = getattr(param, "rich_help_panel", None) or "Options"
                panels.setdefault(panel, []).append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        for name, rows in panels.items():
            with formatter.section(name):
                formatter.write_dl(rows)


def new_app(help: str, **kwargs) -> typer.Typer:
    """A typer app with plain (80-column safe) help that shows its help when called bare."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None,
                       context_settings={"max_content_width": HELP_WIDTH}, **kwargs)
