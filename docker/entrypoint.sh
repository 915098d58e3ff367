#!/bin/sh
# The images' entrypoint.
#
#   docker run IMAGE suite=X ...                  harness run suite=X ... (any harness command: list, data, ...)
#   docker run IMAGE ray-head [OPTIONS]           a Ray head node (GCS on 6379, Ray Client on 10001)
#   docker run IMAGE ray-worker HOST:6379 [OPTIONS]   a Ray worker node that joins the head at HOST:6379
#
# OPTIONS go to `ray start` as they are (e.g. --num-cpus=4, --num-gpus=1). Both Ray roles stay in the
# foreground (--block), so the container lives as long as the node, and stops with it.
set -eu

case "${1:-}" in
    ray-head)
        shift
        exec ray start --head --block --port=6379 --ray-client-server-port=10001 \
            --dashboard-host=0.0.0.0 --disable-usage-stats "$@"
        ;;
    ray-worker)
        shift
        if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
            echo "entrypoint: ray-worker needs the head's address first, e.g. ray-worker head:6379" >&2
            exit 2
        fi
        address=$1
        shift
        exec ray start --address="$address" --block --disable-usage-stats "$@"
        ;;
    *)
        exec harness "$@"
        ;;
esac
