"""Run a suite inside the harness Docker image, from the host: ``harness run suite=X container=cpu|gpu``.

    image = launch("cpu", ["suite=mlp_baseline", "profile=smoke"], reports_dir=Path("reports"),
                   data_dir=data.data_dir(), console=console)

``launch`` builds the image from this checkout (``Dockerfile.cpu`` or ``Dockerfile.gpu``; Docker's layer
cache makes an unchanged checkout a few seconds' no-op, and the image never runs stale code), fills
the host's dataset cache, runs ``harness run ARGS`` in a container with the reports folder and the
cache mounted, streams its log to the console and returns the image id, which every result records
(``HARNESS_IMAGE_ID``). A container that fails or is killed raises :class:`UserError` with the tail of
its log; the cells it finished are already in the mounted results store, and the same command
resumes. The Docker SDK for Python (extra ``container``) is imported only here, and only when used.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import tarfile
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from harness.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

REPORTS_MOUNT = "/app/reports"
"""Where the image's harness writes reports (its ``HARNESS_REPORTS``)."""
DATA_MOUNT = "/data"
"""Where the image's harness keeps datasets (its ``HARNESS_DATA``)."""
LOG_TAIL_LINES = 20
"""Lines of a failed container's (or build's) log quoted in the error."""
LABEL = "org.harness.kind"
"""Label on every container the launcher starts: its kind, so leftovers can be found."""
EXTRA_CA_ARCNAME = "docker/certs/launcher-ca.crt"
"""Where the host's CA bundle goes in the build context (docker/install.sh trusts docker/certs/*)."""
BASE_IMAGE = "debian:bookworm-slim"
"""The Dockerfiles' default ``BASE_IMAGE``: pulled when missing, or made by scripts/bootstrap-base-image."""
IMAGE_PYTHON_TAG = "cp311"
"""The images' Python (Debian bookworm's 3.11): a wheel added to the build context must fit it."""


@dataclass(frozen=True)
class Flavour:
    """One image the launcher can build and run."""

    kind: str
    """``cpu`` or ``gpu``, as in ``container=``."""
    tag: str
    """The image's tag."""
    dockerfile: str
    """Its recipe, relative to the checkout."""
    gpu: bool
    """Whether containers get the host's GPUs (needs the NVIDIA container toolkit)."""


FLAVOURS = {
    "cpu": Flavour("cpu", "harness:cpu", "Dockerfile.cpu", gpu=False),
    "gpu": Flavour("gpu", "harness:gpu", "Dockerfile.gpu", gpu=True),
}


def flavour(kind: str) -> Flavour:
    """The flavour called ``kind``; a UserError names the valid ones."""
    try:
        return FLAVOURS[kind]
    except KeyError:
        raise UserError(f"container={kind!r}: allowed: {', '.join(FLAVOURS)}") from None


def checkout() -> Path | None:
    """The checkout holding the Dockerfiles: the one this harness runs from, else the working folder.

    The second covers a harness installed from a checkout without -e (as tox does), run inside it.
    None outside any checkout.
    """
    for root in (Path(__file__).resolve().parent.parent, Path.cwd().resolve()):
        if (root / FLAVOURS["cpu"].dockerfile).is_file():
            return root
    return None


# --- talking to Docker ----------------------------------------------------------------------------


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
        raise UserError(f"no Docker daemon reachable at {where} ({_first_line(str(error))}); start one "
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


def build(kind: str, console: Console) -> str:
    """Build (or, when nothing changed, re-tag from cache) the ``kind`` image from this checkout.

    Streams Docker's build output to ``console`` and returns the image id. The build context is the
    checkout filtered by ``.dockerignore``, plus the host's CA bundle (for TLS-intercepting proxies)
    and, for the CPU image, a CPU torch wheel from pip's find-links when ``wheelhouse/`` has none.
    """
    chosen = flavour(kind)
    root = checkout()
    if root is None:
        raise UserError(f"image {chosen.tag} cannot be built: no checkout with {chosen.dockerfile} beside "
                        f"this harness; build it with docker build -f {chosen.dockerfile} -t {chosen.tag} CHECKOUT")
    docker_client = client()
    from docker.errors import APIError

    ensure_base_image(docker_client)
    extras = context_extras(root, chosen)
    console.print(f"building {chosen.tag} from {root / chosen.dockerfile}"
                  + "".join(f"\n  + {arcname} (from {path})" for arcname, path in extras.items()),
                  markup=False, highlight=False)
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    built = None
    with tempfile.TemporaryFile() as context:
        write_build_context(root, chosen.dockerfile, extras, context)
        context.seek(0)
        try:
            stream = docker_client.api.build(
                fileobj=context, custom_context=True, encoding=None, dockerfile=chosen.dockerfile,
                tag=chosen.tag, buildargs=build_args(root), rm=True, forcerm=True, decode=True,
                labels={LABEL: chosen.kind})
            for event in stream:
                if "error" in event:
                    raise UserError(failure_message(f"building {chosen.tag} failed: {_first_line(event['error'])}",
                                                    [*tail, event["error"].rstrip()]))
                for line in _ANSI.sub("", event.get("stream", "")).splitlines():
                    if line.strip():
                        tail.append(line)
                        # Layer ids and container clean-up are Docker's bookkeeping, not progress.
                        if not line.startswith((" ---> ", "Removing intermediate container")):
                            console.print(line, style="dim", markup=False, highlight=False)
                built = event.get("aux", {}).get("ID", built)
        except APIError as error:
            raise UserError(failure_message(f"building {chosen.tag} failed: {_first_line(str(error))}", tail)) from None
    return built or docker_client.images.get(chosen.tag).id


def ensure_base_image(docker_client: Any) -> None:
    """Make sure ``BASE_IMAGE`` is here, pulling it if need be; say how to make it where no registry answers.

    The classic builder would pull it too, but its failure names neither the image nor the way out.
    """
    from docker.errors import DockerException, ImageNotFound

    try:
        docker_client.images.get(BASE_IMAGE)
        return
    except ImageNotFound:
        pass
    try:
        docker_client.images.pull(BASE_IMAGE)
    except DockerException as error:
        raise UserError(f"base image {BASE_IMAGE} is not here and cannot be pulled ({_first_line(str(error))}); "
                        "make it from Debian's archive with scripts/bootstrap-base-image") from None


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
    default all of them, where the host can), because the image carries no npm or apt lists to fetch
    them itself. The container runs as ``user`` (default: the host's ``uid:gid``) so that the files it
    writes belong to whoever launched it. Raises UserError if the container fails or is killed.
    """
    chosen = flavour(kind)
    docker_client = client()
    reports_dir, data_dir = reports_dir.resolve(), data_dir.resolve()
    # Made here, before the mount: a folder Docker makes for a missing mount source belongs to root.
    reports_dir.mkdir(parents=True, exist_ok=True)
    prefetch(datasets, data_dir, console, required=datasets is not None)
    image = build(kind, console) if checkout() is not None else image_id(kind)
    if image is None:
        raise UserError(f"image {chosen.tag} not found and no checkout to build it from")

    options = run_options(chosen, image, reports_dir, data_dir, user if user is not None else host_user())
    command = container_command(args)
    console.print(f"running harness {' '.join(command)} in {chosen.tag} ({short_id(image)})",
                  markup=False, highlight=False)
    container = docker_client.containers.run(image, command, detach=True, **options)
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
        _quietly(container.kill)
        raise
    finally:
        _quietly(lambda: container.remove(force=True))
    code = status.get("StatusCode", -1)
    if code != 0:
        raise UserError(failure_message(exit_summary(chosen.kind, code, oom, reports_dir), tail))
    return image


# --- pieces without a daemon (unit-tested) --------------------------------------------------------


def container_command(args: list[str]) -> list[str]:
    """``run ARGS`` for the image's entrypoint, without the options that only mean something on the host.

    ``container=`` would start a container inside the container, and ``reports=`` names a host path:
    inside, reports always go to the mounted ``/app/reports``.
    """
    return ["run", *(arg for arg in args if not arg.startswith(("container=", "reports=")))]


def host_user() -> str | None:
    """``uid:gid`` of this process, so a container's files belong to the host user (None off POSIX)."""
    if not hasattr(os, "getuid"):
        return None
    return f"{os.getuid()}:{os.getgid()}"


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


def failure_message(summary: str, tail: Iterable[str]) -> str:
    """``summary`` on one line, then the log's last lines indented under a header."""
    lines = [line for line in tail if line.strip()]
    if not lines:
        return summary
    return "\n".join([summary, f"  last {len(lines)} line(s) of its log:", *(f"    {line}" for line in lines)])


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


def short_id(image: str) -> str:
    """``sha256:0123456789ab...`` -> ``0123456789ab``, the form ``docker images`` shows."""
    return image.removeprefix("sha256:")[:12]


def build_args(root: Path) -> dict[str, str]:
    """Build arguments: the checkout's commit, so results from the image still name their source."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"HARNESS_GIT_COMMIT": proc.stdout.strip()} if proc.returncode == 0 else {}


def context_extras(root: Path, chosen: Flavour) -> dict[str, Path]:
    """Files to add to the build context that the checkout does not hold: arcname -> host path.

    - The host's CA bundle (``$HARNESS_CA_CERT``, else ``$SSL_CERT_FILE``, else the system bundle):
      behind a TLS-intercepting proxy pip cannot verify the index without it, and elsewhere it only
      repeats public CAs, which the image build drops.
    - For the CPU image, a CPU torch wheel from pip's find-links when ``wheelhouse/`` has no torch:
      PyPI's torch is the CUDA build, and the CPU index may be unreachable.
    """
    extras: dict[str, Path] = {}
    candidates = [os.environ.get("HARNESS_CA_CERT"), os.environ.get("SSL_CERT_FILE"),
                  ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt"]
    ca = next((Path(path) for path in candidates if path and Path(path).is_file()), None)
    if ca is not None:
        extras[EXTRA_CA_ARCNAME] = ca
    if not chosen.gpu and not any((root / "wheelhouse").glob("torch-*.whl")):
        for wheel in cpu_torch_wheels(find_links_dirs()):
            extras[f"wheelhouse/{wheel.name}"] = wheel
    return extras


def find_links_dirs() -> list[Path]:
    """Local folders pip is configured to take wheels from (``PIP_FIND_LINKS``, ``pip config``)."""
    values = os.environ.get("PIP_FIND_LINKS", "").split()
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                              timeout=30)
        for line in proc.stdout.splitlines():
            key, _, value = line.partition("=")
            if key.endswith("find-links"):
                values += value.strip().strip("'\"").split()
    except (OSError, subprocess.SubprocessError):
        pass
    folders = [Path(value.removeprefix("file://")) for value in values if "://" not in value.removeprefix("file://")]
    return [folder for folder in dict.fromkeys(folders) if folder.is_dir()]


def cpu_torch_wheels(folders: Iterable[Path]) -> list[Path]:
    """CPU torch wheels for the image's Python on x86-64 Linux in ``folders``, one per file name."""
    pattern = re.compile(rf"^torch-[^-]+\+cpu-{IMAGE_PYTHON_TAG}-{IMAGE_PYTHON_TAG}-\S*linux\S*_x86_64\.whl$")
    found: dict[str, Path] = {}
    for folder in folders:
        for wheel in sorted(folder.glob("torch-*.whl")):
            if pattern.match(wheel.name):
                found.setdefault(wheel.name, wheel)
    return list(found.values())


def dockerignore_patterns(root: Path) -> list[str]:
    """The checkout's ``.dockerignore`` patterns (comments and blank lines dropped)."""
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def write_build_context(root: Path, dockerfile: str, extras: dict[str, Path], out: IO[bytes]) -> None:
    """Write the build context to ``out`` as a tar: ``root`` filtered by ``.dockerignore``, plus ``extras``.

    Made here rather than by the SDK so that ``extras`` travel without being copied into the checkout.
    """
    from docker.utils.build import exclude_paths

    names = sorted(exclude_paths(str(root), dockerignore_patterns(root), dockerfile=dockerfile))
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name in names:
            if name in extras:
                continue  # the extra of the same name wins
            tar.add(root / name, arcname=name, recursive=False)
        for arcname, path in extras.items():
            path = path.resolve()  # the file, not a link to it (/usr/lib/ssl/cert.pem is one)
            info = tar.gettarinfo(str(path), arcname=arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(path, "rb") as handle:
                tar.addfile(info, handle)


def prefetch(datasets: Iterable[str] | None, data_dir: Path, console: Console, *, required: bool) -> None:
    """Fill ``data_dir`` with ``datasets`` (default: all) on the host, where npm and apt can fetch them.

    Already-cached files are only verified. When ``required`` is false a dataset the host cannot get
    is a warning, not an error: the run may not need it, and the container says so if it does.
    """
    from harness import data

    names = list(datasets) if datasets is not None else list(data.DATASETS)
    with _environment("HARNESS_DATA", str(data_dir)):
        for name in names:
            try:
                data.ensure(name, log=lambda line: console.print(line, markup=False, highlight=False))
            except data.DataError as error:
                if required:
                    raise
                console.print(f"warning: {error}", markup=False, highlight=False)


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    # harness.data finds its cache through $HARNESS_DATA; point it at the folder the container mounts.
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


# The classic builder colours a step's stderr; the console is not necessarily a terminal.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def _quietly(action: Any) -> None:
    # Clean-up after a failure must not hide the failure itself.
    try:
        action()
    except Exception:  # noqa: BLE001 - any Docker or connection error here is secondary
        pass
