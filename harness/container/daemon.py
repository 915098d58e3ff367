"""Talking to the Docker daemon: a client that has answered, and Docker's errors as one-line messages.

The Docker SDK for Python (extra ``container``) is imported here, and only when a client is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from harness.container.images import flavour
from harness.errors import UserError

LOG_TAIL_LINES = 20
"""Lines of a failed container's (or build's) log quoted in the error."""


def client() -> Any:
    """A Docker SDK client that has answered a ping; UserError when there is no SDK or no daemon."""
    try:
        from docker.errors import DockerException

        import docker
    except ImportError:
        raise UserError("the Docker SDK for Python is not installed: pip install 'harness[container]'") from None
    try:
        docker_client = docker.from_env()
        docker_client.ping()
    except DockerException as error:
        where = os.environ.get("DOCKER_HOST", "the default socket")
        raise UserError(f"no Docker daemon reachable at {where} ({first_line(str(error))}); start one "
                        "(scripts/start-docker-daemon on Debian) or run without container=") from None
    return docker_client


def image_id(kind: str) -> str | None:
    """The id of the ``kind`` image (``sha256:...``), or None if it has not been built."""
    docker_client = client()
    from docker.errors import ImageNotFound

    try:
        return docker_client.images.get(flavour(kind).tag).id
    except ImageNotFound:
        return None


def failure_message(summary: str, tail: Iterable[str]) -> str:
    """``summary`` on one line, then the log's last lines indented under a header."""
    lines = [line for line in tail if line.strip()]
    if not lines:
        return summary
    return "\n".join([summary, f"  last {len(lines)} line(s) of its log:", *(f"    {line}" for line in lines)])


def short_id(image: str) -> str:
    """``sha256:0123456789ab...`` -> ``0123456789ab``, the form ``docker images`` shows."""
    return image.removeprefix("sha256:")[:12]


def first_line(text: str) -> str:
    """The first non-blank line of ``text`` (Docker's errors put the cause first), stripped."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def quietly(action: Callable[[], object]) -> None:
    """Run ``action``, ignoring any error: clean-up after a failure must not hide the failure itself."""
    try:
        action()
    except Exception:  # noqa: BLE001 - any Docker or connection error here is secondary
        pass
