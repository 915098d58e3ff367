"""Containers: the harness images built from a checkout, and suites run in them through the Docker SDK.

One idea per module, each using only those above it:

- :mod:`.images`   which images exist (``cpu``, ``gpu``), their tags, recipes and the checkout
- :mod:`.daemon`   a Docker client that has answered; Docker's errors as one-line messages
- :mod:`.context`  the build context: the checkout by ``.dockerignore``, plus the host's CA bundle and wheels
- :mod:`.datasets` the verified datasets an image carries; the host's cache filled before a run
- :mod:`.builder`  building an image, its log streamed
- :mod:`.launcher` ``harness run ARGS`` in a container: mounts, an unprivileged user, log, exit status

The Ray side of the images (``ray-head``, ``ray-worker`` in docker/entrypoint.sh) needs no Python here:
docker/ray-compose.yml and deploy/kuberay.yaml start them.
"""

from harness.container.builder import build
from harness.container.daemon import client, image_id
from harness.container.images import FLAVOURS, flavour
from harness.container.launcher import launch

__all__ = ["FLAVOURS", "build", "client", "flavour", "image_id", "launch"]
