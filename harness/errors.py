"""The exceptions the command line turns into exit codes.

Everything a user can get wrong (a suite file, an override, a dataset file, an image) raises
:class:`UserError` with a one-line message; ``harness.cli.main`` catches it once and exits 2.
"""


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit code 2, nothing written."""

    exit_code = 2


class CellsFailed(Exception):
    """A run finished but at least one cell failed; the finished cells are stored. Exit code 1."""

    exit_code = 1


class RegressionFound(Exception):
    """A comparison found a regression against the baseline. Exit code 1."""

    exit_code = 1
