"""Reading a TOML file a person wrote (a suite, a study): every way it can be unreadable is one line.

TOML is UTF-8 by definition, so a file in another encoding (Latin-1, UTF-16) is refused with the
position of its first bad byte rather than a UnicodeDecodeError traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from harness.errors import UserError


def read_toml(path: Path, kind: str) -> dict[str, Any]:
    """The parsed file; a problem is a UserError starting ``<kind> file <path>:``."""
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise UserError(f"{kind} file {path}: not UTF-8 text (byte {error.start}: {error.object[error.start]:#04x}); "
                        "save it as UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{kind} file {path}: invalid TOML: {error}") from None
    except OSError as error:
        raise UserError(f"{kind} file {path}: cannot read: {error.strerror}") from None
