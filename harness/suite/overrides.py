"""``key=value`` overrides, applied to a suite's raw data before it is validated.

Values are parsed as Python literals (``2``, ``0.5``, ``[0, 1]``, ``true``/``false``, ``'text'``) and
fall back to a plain string, so ``backend=torch`` needs no quotes. Dotted keys reach nested fields
(``train.epochs=2``); a number reaches into a list (``models.0.epochs=4``). Whether the key exists
and the value has the right type is decided by validating the whole suite afterwards, so an override
is held to exactly the rules of the suite file.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from harness.errors import UserError, echo

#: The longest value an override may have. Longer is a mistake (a pasted file), and Python's literal
#: parser can exhaust the stack or memory on a long enough one (thousands of '-' then '1').
MAX_VALUE_LENGTH = 10_000

_WORDS = {"true": True, "false": False, "none": None, "null": None}


@dataclass(frozen=True)
class Override:
    """One ``key=value`` setting and where it came from (for error messages)."""

    key: str
    value: Any
    source: str = "command line"

    @classmethod
    def parse(cls, text: str, source: str = "command line") -> "Override":
        """Parse ``key=value``; a missing ``=`` or empty key is a UserError."""
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"bad argument {echo(text)}: expected key=value (e.g. train.epochs=2)")
        return cls(key, parse_value(value.strip(), f"{source} {key}="), source)

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any], source: str) -> list["Override"]:
        """Overrides from a profile table, whose keys may be dotted or nested tables."""
        return [cls(key, value, source) for key, value in _flatten(settings)]


def parse_value(text: str, name: str = "override") -> Any:
    """A literal if the text is one, else the text itself; ``name`` says whose value in an error."""
    if len(text) > MAX_VALUE_LENGTH:
        raise UserError(f"{name}: value {echo(text)} is too long: at most {MAX_VALUE_LENGTH:,} characters")
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    except (RecursionError, MemoryError):
        raise UserError(f"{name}: value {echo(text)} is nested too deeply to read; "
                        "expected a number, a string, true/false or a short list") from None


def apply_overrides(raw: dict[str, Any], overrides: Iterable[Override], where: str) -> dict[str, Any]:
    """A copy of ``raw`` with each override set; the structure must allow the path."""
    result = copy.deepcopy(raw)
    for override in overrides:
        parts = override.key.split(".")
        node: Any = result
        for depth, part in enumerate(parts[:-1]):
            node = _step(node, part, override, parts[: depth + 1], where)
        _set(node, parts[-1], override, where)
    return result


def _step(node: Any, part: str, override: Override, path: list[str], where: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, override, where)]
    if not isinstance(node, dict):
        raise UserError(f"{where}: {override.source} override {echo(override.key)}: {'.'.join(path[:-1])} has no fields")
    child = node.setdefault(part, {})
    if not isinstance(child, (dict, list)):
        raise UserError(f"{where}: {override.source} override {echo(override.key)}: {'.'.join(path)} has no fields")
    return child


def _set(node: Any, part: str, override: Override, where: str) -> None:
    if isinstance(node, list):
        node[_index(node, part, override, where)] = override.value
    elif isinstance(node, dict):
        node[part] = copy.deepcopy(override.value)
    else:
        raise UserError(f"{where}: {override.source} override {echo(override.key)}: cannot set a field here")


def _index(node: list, part: str, override: Override, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise UserError(
            f"{where}: {override.source} override {echo(override.key)}: {echo(part)} is not an index 0..{len(node) - 1}"
        )
    return int(part)


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in settings.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.extend(_flatten(value, dotted + "."))
        else:
            items.append((dotted, value))
    return items
