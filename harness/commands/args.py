"""Parsing ``key=value`` arguments shared by the commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from harness.errors import UserError, echo
from harness.paths import reports_dir
from harness.suite.overrides import Override


@dataclass
class Arguments:
    """A command's ``key=value`` arguments, split into the command's own options and the rest."""

    options: dict[str, str] = field(default_factory=dict)
    overrides: list[Override] = field(default_factory=list)
    positional: list[str] = field(default_factory=list)

    @property
    def reports(self) -> Path:
        """The reports folder: the ``reports=`` option, else the default (:func:`harness.paths.reports_dir`)."""
        return Path(self.options["reports"]) if "reports" in self.options else reports_dir()


def parse_arguments(argv: list[str], options: dict[str, str], *, allow_overrides: bool, positional: int = 0) -> Arguments:
    """Split ``argv`` into known options (``options`` maps name -> help), suite overrides and positionals.

    Unknown keys are suite overrides when the command takes them, otherwise a UserError naming the
    key and the allowed ones.
    """
    parsed = Arguments()
    for text in argv:
        if "=" not in text:
            if len(parsed.positional) < positional:
                parsed.positional.append(text)
                continue
            raise UserError(f"bad argument {echo(text)}: expected key=value; options: {', '.join(options)}")
        override = Override.parse(text)
        if override.key in options:
            parsed.options[override.key] = text.partition("=")[2].strip()
        elif allow_overrides:
            parsed.overrides.append(override)
        else:
            raise UserError(f"unknown option {echo(override.key)}; options: {', '.join(options)}")
    return parsed


def option_help(usage: str, options: dict[str, str]) -> str:
    """A --help text: the usage line and one line per option."""
    width = max((len(name) for name in options), default=0)
    return "\n".join([usage, "", "options:"] + [f"  {name:<{width}}  {text}" for name, text in options.items()])


def command_help(module: ModuleType) -> str:
    """The --help text of a command module: its docstring's usage line(s) and its ``OPTIONS``."""
    usage = "\n".join((module.__doc__ or "").splitlines()[:getattr(module, "USAGE_LINES", 1)])
    return option_help(usage, getattr(module, "OPTIONS", {}))
