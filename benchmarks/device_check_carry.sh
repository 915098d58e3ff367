#!/usr/bin/env bash
# Prepares, in the checkout's root, what benchmarks/device_check.py needs on a GPU machine without
# network (docs/gpu.md):
#   .whl/      wheels of the Python packages the GPU image lacks (pydantic and its needs, for CPython
#              3.12 on x86-64), and harness's own wheel, whose metadata registers the paper's tasks
#              (the `harness.content` entry point); the code itself runs from the checkout;
#   .devdata/  MNIST and Fashion-MNIST as gzipped IDX files (device_check.py --datasets unpacks them).
# Both folders are git-ignored. Needs network once, a Python with pip and setuptools>=77 ($PYTHON,
# default python3), and the datasets in the harness cache (`harness data` fetches them).
#
#   benchmarks/device_check_carry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CACHE=${HARNESS_DATA:-$HOME/.cache/harness}
# The versions this repository is tested with; pydantic-core must be the one pydantic pins.
WHEELS=(pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
        typing-extensions==4.16.0)

rm -rf .whl .devdata
mkdir -p .whl .devdata
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}"
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w .whl .
rm -rf build harness.egg-info

for dataset in mnist fashion_mnist; do
    mkdir -p ".devdata/$dataset"
    for file in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        gzip -9 -c "$CACHE/$dataset/$file" > ".devdata/$dataset/$file.gz"
    done
done
du -sh .whl .devdata
