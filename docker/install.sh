#!/bin/sh
# Usage: docker/install.sh system|deps LIST|app      (run by Dockerfile.cpu and Dockerfile.gpu, as root)
#
# The one recipe both images share; the Dockerfiles differ only in the build arguments they pass:
#   system  Debian packages (Python 3.11, CA certificates), extra CA certificates, the non-root user
#           and the folders any uid may write (/app/reports, /data, $HOME).
#   deps    the requirement list LIST (a file in the build folder, made by requirements.py) into a
#           virtual environment in /opt/venv, preferring the wheels in wheelhouse/. Run twice: the
#           frameworks first, then the whole list, each in a layer of its own.
#   app     the harness itself from /app (editable, so suites/ and the source stay where a
#           checkout has them), without touching the dependencies.
# Build arguments read here: FLAVOUR (cpu|gpu), TORCH_INDEX_URL, EXTRA_CA_CERTS.
set -eu

build=/opt/harness-build
venv=/opt/venv

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

# Every *.crt/*.pem in docker/certs/ (one certificate or a whole bundle, such as the host's) and the
# PEM text of the EXTRA_CA_CERTS build argument join the system trust store. Certificates the store
# holds already are dropped, and the rest are split one per file, because update-ca-certificates
# links only single-certificate files.
add_ca_certs() {
    incoming=$(mktemp -d)
    for f in "$build"/certs/*.crt "$build"/certs/*.pem; do
        if [ -f "$f" ]; then cat "$f" >>"$incoming/all.pem"; fi
    done
    if [ -n "${EXTRA_CA_CERTS:-}" ]; then printf '%s\n' "$EXTRA_CA_CERTS" >>"$incoming/all.pem"; fi
    if [ -s "$incoming/all.pem" ]; then
        dir=/usr/local/share/ca-certificates/harness
        mkdir -p "$dir"
        awk -v dir="$dir" '
            /-----BEGIN CERTIFICATE-----/ { body = ""; text = ""; inside = 1 }
            inside { text = text $0 "\n"; if ($0 !~ /-----/) body = body $0 }
            /-----END CERTIFICATE-----/ {
                inside = 0
                if (FILENAME == ARGV[1]) known[body] = 1
                else if (!(body in known)) { known[body] = 1; n++; printf "%s", text > sprintf("%s/extra-%03d.crt", dir, n) }
            }' /etc/ssl/certs/ca-certificates.crt "$incoming/all.pem"
        say "added $(find "$dir" -name '*.crt' | wc -l) CA certificate(s) the system did not trust yet"
    fi
    update-ca-certificates >/dev/null 2>"$incoming/log" || { cat "$incoming/log" >&2; exit 1; }
    rm -rf "$incoming"
}

system() {
    export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
    apt-get update -qq
    # python3-venv brings ensurepip; nodejs/npm are left out on purpose (about 260 MB): the dataset
    # cache is filled on the host or mounted (see docker/README.md).
    apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates >/dev/null
    rm -rf /var/lib/apt/lists/*
    add_ca_certs
    # uid 1000 is the usual first user on a Linux host, so a plain `docker run` writes files that
    # host user owns; the launcher passes the host's own uid:gid instead, which need not exist here.
    useradd --uid 1000 --user-group --home-dir /home/harness --create-home --shell /bin/sh harness
    mkdir -p /app/reports /data
    # Any uid may write (sticky, like /tmp): reports, the dataset cache and $HOME (matplotlib, Keras
    # and torch keep caches there) must work under --user with an arbitrary host uid.
    chmod 1777 /app/reports /data /home/harness
}

deps() {
    list=$build/$1
    [ -f "$list" ] || die "deps: no requirement list $list"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    pip=$venv/bin/pip

    # Wheels of the other flavour must not win: the CPU torch wheel in wheelhouse/ would otherwise
    # satisfy torch==X in the GPU image, and a CUDA wheel would pull CUDA into the CPU image.
    links=$(mktemp -d)
    for whl in "$build"/wheelhouse/*.whl; do
        [ -f "$whl" ] || continue
        name=$(basename "$whl")
        case "$FLAVOUR:$name" in
            gpu:*+cpu*|cpu:*+cu[0-9]*|cpu:nvidia_*) say "wheelhouse: skipping $name for $FLAVOUR" ;;
            *) ln -s "$whl" "$links/$name" ;;
        esac
    done

    # The whole list (made by docker/requirements.py in the Dockerfile's requirements stage) holds
    # pyproject's build requirements too: `app` installs without build isolation, so without an index.
    set -- --no-cache-dir --find-links "$links" -r "$list"
    # The torch index is only asked when the wheelhouse has no torch: offline builds stay offline.
    if [ -n "${TORCH_INDEX_URL:-}" ] && ! ls "$links"/torch-*.whl >/dev/null 2>&1; then
        set -- "$@" --extra-index-url "$TORCH_INDEX_URL"
    fi
    say "pip install ($FLAVOUR): $(tr '\n' ' ' <"$list")"
    $pip install --progress-bar off "$@"
    rm -rf "$links"
    # TensorFlow's C++ headers (about 290 MB) serve only to compile custom ops, which the harness never
    # does. torch's headers stay: torch.compile's C++ code generation needs them.
    rm -rf "$venv"/lib/python3*/site-packages/tensorflow/include

    if [ "$FLAVOUR" = cpu ]; then
        # The CPU image promises no CUDA libraries: fail the build rather than ship 4 GB of them.
        cuda=$($pip list 2>/dev/null | grep -i -E '^(nvidia-|cuda-|triton )' || true)
        [ -z "$cuda" ] || die "CUDA packages in the CPU image: $cuda"
        $venv/bin/python -c 'import torch, sys; sys.exit(f"torch {torch.__version__} is a CUDA build" if torch.version.cuda else 0)'
    fi
}

app() {
    # Editable: the installed harness is /app/harness itself, and suites/ beside it is found.
    $venv/bin/pip install -q --no-cache-dir --no-deps --no-build-isolation -e /app
    # Compile now: at run time the user may not be allowed to write __pycache__ into /app.
    $venv/bin/python -m compileall -q /app/harness >/dev/null
    chmod 1777 /app/reports
    $venv/bin/python -c 'import harness; print("install.sh: harness", harness.__version__, "installed")'
}

case "${1:-}" in
    system|app) "$1" ;;
    deps) [ $# -eq 2 ] || die "usage: install.sh deps LIST"; deps "$2" ;;
    *) sed -n '2p' "$0" >&2; exit 2 ;;
esac
