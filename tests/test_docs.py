"""Docs that can't drift: every command and every option of the CLI appears in the README."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from cli import app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _commands(cmd, prefix: str = "imgcap"):
    yield prefix, cmd
    if hasattr(cmd, "commands"):  # a group (typer may not subclass click.Group)
        for name, sub in cmd.commands.items():
            yield from _commands(sub, f"{prefix} {name}")


def test_every_command_and_option_is_documented():
    missing = []
    for name, cmd in _commands(typer.main.get_command(app)):
        if name != "imgcap" and f"`{name}" not in README:
            missing.append(name)
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                documented = re.search(re.escape(opt) + r"\b", README)
                if opt.startswith("--") and opt != "--help" and not documented:
                    missing.append(f"{name} {opt}")
    assert not missing, f"not in README.md: {missing}"


def test_every_command_has_help():
    for name, cmd in _commands(typer.main.get_command(app)):
        assert (cmd.help or "").strip(), f"{name} has no help text"
