"""Reading the deployment files as their tools do, and checking the `bus` command lines in them
against the click command tree of `bus.cli.main`."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from bus.cli import main
from bus.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    """docker-compose.yml as YAML reads it: anchors and merge keys resolved."""
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text("utf-8"))
    return loaded


def words(value: str | list[str] | None) -> list[str]:
    """A compose command or entrypoint, in either of its spellings, as words."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(word) for word in value]


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment, in either of its spellings; None: taken from the shell."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.partition("=") for item in env]
        return {name: value if sep else None for name, sep, value in pairs}
    return {name: None if value is None else str(value) for name, value in env.items()}


def is_setting(variable: str) -> bool:
    """BUS_<FIELD> for a field of the one Settings object."""
    return variable.startswith("BUS_") and variable[4:].lower() in Settings.model_fields


def option(command: click.Command, name: str) -> click.Option | None:
    for param in command.params:
        if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def resolve(argv: Sequence[str]) -> tuple[str, ...]:
    """The path of the command `bus ARGV...` runs, e.g. ("connector", "run"). AssertionError
    saying which word is not a command, an option or an argument of the command it is given to.
    Only names are checked: values are for the machine that runs them (paths, hosts)."""
    command: click.Command = main
    path: list[str] = []
    arguments = 0
    remaining = list(argv)
    while remaining:
        word = remaining.pop(0)
        where = " ".join(["bus", *path])
        if word.startswith("-") and word != "-":
            name, given, _ = word.partition("=")
            found = option(command, name) or (
                name in command.get_help_option_names(click.Context(command)) or None
            )
            assert found is not None, f"`{where}` has no option {name}"
            takes_value = isinstance(found, click.Option) and not (found.is_flag or found.count)
            if takes_value and not given:
                assert remaining, f"`{where} {name}` needs a value"
                remaining.pop(0)
            continue
        if isinstance(command, click.Group):
            sub = command.commands.get(word)
            assert sub is not None, f"`{where}` has no command {word!r}"
            command, arguments = sub, 0
            path.append(word)
            continue
        arguments += 1
        taken = [p for p in command.params if isinstance(p, click.Argument)]
        assert any(p.nargs == -1 for p in taken) or arguments <= len(taken), (
            f"`{where}` takes {len(taken)} argument(s), not {word!r}"
        )
    where = " ".join(["bus", *path])
    if isinstance(command, click.Group):
        assert command.invoke_without_command, f"`{where}` needs a command"
    required = [p for p in command.params if isinstance(p, click.Argument) and p.required]
    assert arguments >= len(required), f"`{where}` needs {len(required)} argument(s)"
    return tuple(path)
