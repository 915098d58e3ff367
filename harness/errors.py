"""The exceptions the command line turns into exit codes.

Everything a user can get wrong (a suite file, an override, a dataset file, an image) raises
:class:`UserError` with a one-line message; ``harness.cli.main`` catches it once and exits 2.
"""

#: The most characters of a user's value an error message repeats: enough to recognise it, short
#: enough that a pasted 100 KB value does not bury the message (and the allowed values after it).
ECHO_LIMIT = 80


#: The longest message a UserError keeps, whatever a caller put in it (the same cut as :func:`echo`).
MESSAGE_LIMIT = 1000


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` for an error message, cut in the middle to ``limit`` characters when longer."""
    return shorten(repr(value), limit)


def shorten(text: str, limit: int) -> str:
    """``text`` cut in the middle to about ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]}[...]{text[-keep:]} ({len(text):,} characters)"


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit code 2, nothing written.

    The message is capped (:data:`MESSAGE_LIMIT`) so no path can echo a huge value whole.
    """

    exit_code = 2

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(shorten(str(message), MESSAGE_LIMIT), *args)


class CellsFailed(Exception):
    """A run finished but at least one cell failed; the finished cells are stored. Exit code 1."""

    exit_code = 1


class RegressionFound(Exception):
    """A comparison found a regression against the baseline. Exit code 1."""

    exit_code = 1
