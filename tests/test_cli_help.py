"""Every command's ``--help`` at 80 columns: each option name whole, with its default."""

import re
import subprocess
import sys

import pytest
import typer

from promptseg.cli import app


def _commands(command, path=()):
    """``(path, command)`` for every leaf command under the typer app."""
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield path, command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


ROOT = typer.main.get_command(app)
COMMANDS = list(_commands(ROOT))


def _help(path) -> str:
    env = {"COLUMNS": "80", "PATH": "", "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(
        [sys.executable, "-m", "promptseg.cli", *path, "--help"],
        capture_output=True, text=True, env=env, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_command_is_walked():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"segment", "demo", "train sam", "train clip", "data shapeworld",
            "convert sam"} <= names


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_fits_80_columns_with_whole_names_and_defaults(path, command):
    text = _help(path)
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert not wide, f"lines over 80 columns: {wide}"
    assert "…" not in text
    flat = " ".join(text.split())  # defaults may wrap onto the next line
    for param in command.params:
        if param.param_type_name == "argument":
            continue
        for name in (*param.opts, *param.secondary_opts):
            whole = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)
            assert whole, f"{name} not shown whole in `{' '.join(path)} --help`"
        shown = param.default is not None and not param.is_flag and param.name != "help"
        if shown and not param.required:
            assert f"[default: {_default_text(param.default)}" in flat.replace("- ", "-"), (
                f"{param.opts[0]} does not show its default {param.default!r}")


def _default_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def test_root_help_lists_every_command():
    text = _help(())
    for name in ROOT.commands:
        assert name in text
