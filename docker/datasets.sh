#!/bin/sh
# Usage: docker/datasets.sh NAMES      (the datasets stage of Dockerfile.cpu and Dockerfile.gpu, as root)
#
# NAMES: comma-separated datasets (mnist,fashion_mnist), empty for none. Each file of each dataset,
# staged in docker/datasets/NAME/ from the host's verified cache, is checked against the SHA-256 in
# docker/datasets/MANIFEST (the harness's own table, copied) and installed gzipped into
# /usr/share/datasets/FOLDER/: a folder the harness searches before any network source
# (harness.data.SYSTEM_DIRS), so a container copies it into its /data cache, verified again, offline.
set -eu

# Overridable so that tests can run this script on a folder of their own.
src=${DATASETS_SRC:-/opt/harness-build/datasets}
dest=${DATASETS_DEST:-/usr/share/datasets}
manifest=$src/MANIFEST

die() { echo "datasets.sh: $*" >&2; exit 1; }

mkdir -p "$dest"
known=$(grep -v '^#' "$manifest" | awk 'NF { print $1 }' | sort -u | tr '\n' ' ')
lines=$(mktemp)
for name in $(printf '%s' "${1:-}" | tr ',' ' '); do
    grep -v '^#' "$manifest" | awk -v name="$name" '$1 == name' >"$lines"
    [ -s "$lines" ] || die "DATASETS: unknown dataset '$name'; known: $known(empty for none)"
    while read -r _ folder file sha; do
        staged=$src/$name/$file
        [ -f "$staged" ] || die "docker/datasets/$name/$file is missing: run scripts/stage-datasets first, or leave the datasets out with --build-arg DATASETS="
        echo "$sha  $staged" | sha256sum -c --status \
            || die "docker/datasets/$name/$file has the wrong SHA-256 (want $sha): stage it again with scripts/stage-datasets"
        installed=$dest/$folder
        mkdir -p "$installed"
        # -n: no name or time stamp in the header, so the same file makes the same layer.
        gzip -n -c "$staged" >"$installed/$file.gz"
    done <"$lines"
    echo "datasets.sh: $name verified and installed in $installed"
done
rm -f "$lines"
chmod -R a+rX "$dest"
