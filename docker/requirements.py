"""Print what the image installs for pyproject.toml: build requirements, dependencies, the named extras.

Usage: python3 docker/requirements.py [--extras-only] pyproject.toml torch,tensorflow > requirements.txt

The image build installs these in layers of their own before the source is copied in, so editing
the harness rebuilds in seconds instead of re-installing torch and TensorFlow. ``--extras-only``
prints the extras' own requirements alone: the frameworks' layer is keyed on that list, so a change
to the harness's other dependencies (or to Ray) does not reinstall gigabytes of frameworks. The build requirements
(setuptools) come first because the harness itself is then installed without build isolation, that
is without an index. Extras that name the project itself (``all = ["harness[torch,container]"]``) are
expanded here, since the project is not installed yet. Standard library only: nothing is installed yet.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_SELF = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.-]+)\s*\[(?P<extras>[^\]]*)\]\s*$")


def requirements(pyproject: dict, extras: list[str], *, base: bool = True) -> list[str]:
    """Build requirements, base dependencies (unless not ``base``), those of ``extras``; unique.

    Extras that name the project itself are expanded.
    """
    project = pyproject["project"]
    name = project["name"].lower()
    optional = project.get("optional-dependencies", {})
    out: list[str] = []
    if base:
        out += pyproject.get("build-system", {}).get("requires", [])
        out += project.get("dependencies", [])
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        if extra not in optional:
            raise SystemExit(f"requirements.py: unknown extra {extra!r}; extras: {', '.join(optional)}")
        for requirement in optional[extra]:
            match = _SELF.match(requirement)
            if match and match["name"].lower() == name:
                pending.extend(part.strip() for part in match["extras"].split(",") if part.strip())
            else:
                out.append(requirement)
    return list(dict.fromkeys(out))


def main(argv: list[str]) -> int:
    base = "--extras-only" not in argv
    args = [arg for arg in argv[1:] if arg != "--extras-only"]
    if len(args) != 2:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    pyproject = tomllib.loads(Path(args[0]).read_text())
    extras = [part.strip() for part in args[1].split(",") if part.strip()]
    print("\n".join(requirements(pyproject, extras, base=base)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
