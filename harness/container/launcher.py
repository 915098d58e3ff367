"""Run a suite inside the harness image, from the host: ``harness run suite=X container=cpu|gpu``.

    image = launch("cpu", ["suite=mlp_baseline", "profile=smoke"], reports_dir=Path("reports"),
                   data_dir=data.data_dir(), console=console)

``launch`` builds the image from this checkout (Docker's layer cache makes an unchanged checkout a few
seconds' no-op, and the image never runs stale code), fills the host's dataset cache, runs ``harness
run ARGS`` in a container with the reports folder and the cache mounted, as an unprivileged user that
owns the files it writes, streams its log to the console and returns the image id, which every result
records (``HARNESS_IMAGE_ID``). A container that fails or is killed raises :class:`UserError` with the
tail of its log; the cells it finished are already in the mounted results store, and the same command
resumes.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.container.builder import build
from harness.container.daemon import LOG_TAIL_LINES, client, failure_message, image_id, quietly, short_id
from harness.container.datasets import prefetch
from harness.container.images import LABEL, Flavour, checkout, flavour
from harness.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

REPORTS_MOUNT = "/app/reports"
"""Where the image's harness writes reports (its ``HARNESS_REPORTS``)."""
DATA_MOUNT = "/data"
"""Where the image's harness keeps datasets (its ``HARNESS_DATA``)."""
IMAGE_USER = (1000, 1000)
"""uid and gid of the image's own unprivileged user, ``harness`` (docker/install.sh makes it)."""
ROOT_HOST_USER = (65534, 65534)
"""uid and gid a container runs as when root launches it and root owns the reports: ``nobody`` and
``nogroup``, the ids no real account has (uid 1000, the image's user, is often a person on the host)."""


def launch(
    kind: str,
    args: list[str],
    *,
    reports_dir: Path,
    data_dir: Path,
    console: Console,
    datasets: Iterable[str] | None = None,
    user: str | None = None,
) -> str:
    """Run ``harness run ARGS`` in the ``kind`` image; return the image id.

    The image is built from this checkout first (cached, so cheap when nothing changed) or, outside a
    checkout, must exist already. ``reports_dir`` and ``data_dir`` are mounted at ``/app/reports`` and
    ``/data``; the datasets the run needs are fetched into ``data_dir`` on the host first (``datasets``,
    default all of them, where the host can), where npm and apt lists are (the image has neither: it
    carries only what the host's cache held when it was built). The container runs as ``user``
    (default: :func:`container_user`, never root) so that the files it writes belong to whoever owns
    the reports; root-owned reports that exist are refused rather than handed over (no owner on the
    host ever changes). Raises UserError if the container fails.
    """
    chosen = flavour(kind)
    reports_dir, data_dir = reports_dir.resolve(), data_dir.resolve()
    ids = container_user(reports_dir, host_ids()) if user is None else None
    existed = reports_dir.exists()
    # A folder of nobody's (a run launched this way made it) is written again as nobody; one of root's is not.
    if ids == ROOT_HOST_USER and existed and reports_dir.stat().st_uid == 0:
        raise UserError(f"reports={reports_dir} belongs to root, and a container launched by root runs as uid "
                        f"{ROOT_HOST_USER[0]} (nobody), which cannot write it; the harness never changes the owner of "
                        "what exists: run as a regular user, or name a reports folder that does not exist yet")
    docker_client = client()
    # Made here, before the mount: a folder Docker makes for a missing mount source belongs to root.
    reports_dir.mkdir(parents=True, exist_ok=True)
    if ids == ROOT_HOST_USER and not existed:
        os.chown(reports_dir, *ids)  # made just now, for this run, and empty: nothing that existed changes hands
    prefetch(datasets, data_dir, console, required=datasets is not None)
    image = build(kind, console) if checkout() is not None else image_id(kind)
    if image is None:
        raise UserError(f"image {chosen.tag} not found and no checkout to build it from")
    if ids is not None:
        user = f"{ids[0]}:{ids[1]}"

    options = run_options(chosen, image, reports_dir, data_dir, user)
    command = container_command(args)
    console.print(f"running harness {' '.join(command)} in {chosen.tag} ({short_id(image)})"
                  + (f" as {user}" if user else ""), markup=False, highlight=False)
    container = docker_client.containers.run(image, command, detach=True, **options)
    hostname = container.attrs.get("Config", {}).get("Hostname")
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    try:
        for line in log_lines(container.logs(stream=True, follow=True)):
            tail.append(line)
            console.print(line, markup=False, highlight=False)
        status = container.wait()
        container.reload()
        oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
    except KeyboardInterrupt:
        # The container must not outlive the launcher that owns it: stop it, then let the CLI report.
        quietly(container.kill)
        raise
    finally:
        quietly(lambda: container.remove(force=True))
        if hostname:
            forget_leases(reports_dir, hostname)
    code = status.get("StatusCode", -1)
    if code != 0:
        raise UserError(failure_message(exit_summary(chosen.kind, code, oom, reports_dir), tail))
    return image


def container_command(args: list[str]) -> list[str]:
    """``run ARGS`` for the image's entrypoint, without the options that only mean something on the host.

    ``container=`` would start a container inside the container, and ``reports=`` names a host path:
    inside, reports always go to the mounted ``/app/reports``.
    """
    return ["run", *(arg for arg in args if not arg.startswith(("container=", "reports=")))]


def host_ids() -> tuple[int, int] | None:
    """(uid, gid) of this process (None off POSIX)."""
    if not hasattr(os, "getuid"):
        return None
    return os.getuid(), os.getgid()


def container_user(reports_dir: Path, host: tuple[int, int] | None) -> tuple[int, int] | None:
    """(uid, gid) a container runs as: whoever will own its files, and never root.

    A host user other than root runs as itself, so the files it writes are its own. Root on the host
    must not mean root in the container (a process that escapes it, or writes through a mount, would
    be root on the host): the container then runs as the owner of the reports folder when that is not
    root (``sudo harness run`` in a user's checkout), else as :data:`ROOT_HOST_USER` (nobody), which
    may write only a reports folder the launcher makes for the run. Nothing that exists changes owner.
    None (off POSIX): the image's own user.
    """
    if host is None:
        return None
    if host[0] != 0:
        return host
    owner = reports_dir.stat() if reports_dir.exists() else None
    if owner is not None and owner.st_uid != 0:
        return owner.st_uid, owner.st_gid
    return ROOT_HOST_USER


def forget_leases(reports_dir: Path, hostname: str) -> None:
    """The container has exited, killed or not: every run lease its processes held is dead, so the
    same command resumes its run at once rather than after the lease timeout (the store cannot see
    into another host's processes)."""
    from harness.store import ResultsStore

    if (reports_dir / "results.db").is_file():
        with ResultsStore(reports_dir / "results.db") as store:
            store.forget_host(hostname)


def run_options(chosen: Flavour, image: str, reports_dir: Path, data_dir: Path, user: str | None) -> dict[str, Any]:
    """Keyword arguments of ``containers.run`` for one launch: mounts, user, environment, GPUs."""
    options: dict[str, Any] = {
        "volumes": {
            str(reports_dir): {"bind": REPORTS_MOUNT, "mode": "rw"},
            str(data_dir): {"bind": DATA_MOUNT, "mode": "rw"},
        },
        "environment": {
            "HARNESS_IMAGE_ID": image,
            "HARNESS_REPORTS": REPORTS_MOUNT,
            "HARNESS_DATA": DATA_MOUNT,
        },
        "labels": {LABEL: chosen.kind},
        # An init process forwards signals, so `docker stop` ends the run at once instead of after 10 s.
        "init": True,
    }
    if user:
        options["user"] = user
    if chosen.gpu:
        from docker.types import DeviceRequest

        options["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return options


def exit_summary(kind: str, code: int, oom: bool, reports_dir: Path) -> str:
    """The one-line message for a container that ended with exit status ``code``."""
    if oom:
        what = f"the {kind} container was killed: out of memory (exit {code})"
    elif code in (137, 143):  # 128 + SIGKILL / SIGTERM: docker kill, docker stop, the OOM killer
        what = f"the {kind} container was killed (exit {code})"
    else:
        what = f"the {kind} container failed (exit {code})"
    return f"{what}; the cells it finished are kept in {reports_dir} and the same command resumes"


def log_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Complete lines from a stream of byte chunks that may split lines (and UTF-8 characters) anywhere.

    A carriage return ends a line too: progress bars redraw with it, and each redraw is news.
    """
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = re.split(rb"\r\n|\r|\n", pending)
        for line in complete:
            yield line.decode(errors="replace")
    if pending:
        yield pending.decode(errors="replace")
