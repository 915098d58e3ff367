"""The exceptions the command line turns into exit codes.

Everything a user can get wrong (a suite file, an override, a dataset file, an image) raises
:class:`UserError` with a one-line message; ``harness.cli.main`` catches it once and exits 2. A
storage fault mid-run (a full disk, a folder made read-only) is :class:`StorageError`, exit 3.
"""

import errno

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


class StorageError(Exception):
    """The disk failed a write mid-run: no space, a read-only or vanished folder. Exit code 3.

    Raised with the path that could not be written and why, so the user sees one line that says
    both. What was committed before stays in the store; the same command resumes once it is fixed.
    """

    exit_code = 3

    #: What to do after a fault mid-run.
    RESUME = "finished cells are kept in the store: free space or fix the folder, then run the same command again"

    def __init__(self, path: object, cause: str, advice: str = RESUME) -> None:
        super().__init__(f"{path}: {cause}; {advice}")
        self.path, self.cause = path, cause


#: errno values that say the storage, not the program, failed a write.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})

#: Further errno values that, where a file is being written, mean a folder was made unusable under
#: the run (made read-only, replaced by a file, removed) rather than a bug.
WRITE_ERRNOS = STORAGE_ERRNOS | {errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.ENOENT, errno.EEXIST}


def storage_error(error: OSError) -> StorageError:
    """``error`` (an OSError from a write) as a StorageError naming its path and cause."""
    cause = error.strerror or str(error)
    return StorageError(error.filename if error.filename is not None else "(unknown path)", cause.lower())


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI timeout or cancel, ``docker stop``, ``kill``): handled exactly as Ctrl-C is, so
    finished cells are kept, files written and the lease released, then exit code 143 (128 + 15)."""

    exit_code = 143
