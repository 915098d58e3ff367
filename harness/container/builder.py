"""Building a harness image from this checkout through the Docker SDK (classic builder), log streamed."""

from __future__ import annotations

import re
import tempfile
from collections import deque
from typing import TYPE_CHECKING, Any

from harness.container import datasets
from harness.container.context import build_args, context_extras, write_build_context
from harness.container.daemon import LOG_TAIL_LINES, client, failure_message, first_line
from harness.container.images import BASE_IMAGE, LABEL, checkout, flavour
from harness.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

# The classic builder colours a step's stderr; the console is not necessarily a terminal.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def build(kind: str, console: Console) -> str:
    """Build (or, when nothing changed, re-tag from cache) the ``kind`` image from this checkout.

    Streams Docker's build output to ``console`` and returns the image id. The build context is the
    checkout filtered by ``.dockerignore``, plus the host's CA bundle (for TLS-intercepting proxies),
    for the CPU image a CPU torch wheel from pip's find-links when ``wheelhouse/`` has none, and the
    datasets verified in the host's cache (``harness data``), which the image then carries. Always
    that cache, whatever a run mounts, so the same checkout makes the same image.
    """
    from harness import data

    chosen = flavour(kind)
    root = checkout()
    if root is None:
        raise UserError(f"image {chosen.tag} cannot be built: no checkout with {chosen.dockerfile} beside "
                        f"this harness; build it with docker build -f {chosen.dockerfile} -t {chosen.tag} CHECKOUT")
    docker_client = client()
    from docker.errors import APIError

    ensure_base_image(docker_client)
    data_dir = data.data_dir()
    carried = datasets.verified(data_dir)
    extras = context_extras(root, chosen)
    console.print(f"building {chosen.tag} from {root / chosen.dockerfile}"
                  + "".join(f"\n  + {arcname} (from {path})" for arcname, path in extras.items())
                  + f"\n  + {datasets.STAGE}/: {', '.join(carried) or 'no dataset'} (verified in {data_dir})",
                  markup=False, highlight=False)
    extras.update(datasets.context_files(carried, data_dir))
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    built = None
    with tempfile.TemporaryFile() as context:
        write_build_context(root, chosen.dockerfile, extras, context)
        context.seek(0)
        try:
            stream = docker_client.api.build(
                fileobj=context, custom_context=True, encoding=None, dockerfile=chosen.dockerfile,
                tag=chosen.tag, buildargs={**build_args(root), "DATASETS": ",".join(carried)}, rm=True,
                forcerm=True, decode=True, labels={LABEL: chosen.kind})
            for event in stream:
                if "error" in event:
                    raise UserError(failure_message(f"building {chosen.tag} failed: {first_line(event['error'])}",
                                                    [*tail, event["error"].rstrip()]))
                for line in _ANSI.sub("", event.get("stream", "")).splitlines():
                    if line.strip():
                        tail.append(line)
                        # Layer ids and container clean-up are Docker's bookkeeping, not progress.
                        if not line.startswith((" ---> ", "Removing intermediate container")):
                            console.print(line, style="dim", markup=False, highlight=False)
                built = event.get("aux", {}).get("ID", built)
        except APIError as error:
            raise UserError(failure_message(f"building {chosen.tag} failed: {first_line(str(error))}", tail)) from None
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
        raise UserError(f"base image {BASE_IMAGE} is not here and cannot be pulled ({first_line(str(error))}); "
                        "make it from Debian's archive with scripts/bootstrap-base-image") from None
