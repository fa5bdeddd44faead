#!/bin/bash
# Fills the ignored .dev/ with what a lent GPU machine lacks (its image has torch 2.11 for Python 3.12, no Ray,
# no network): Ray 2.60 stripped to fit the device tool's 64 MiB carry, the cp312 wheels Ray and the tests need,
# and the shared JPEG copy. Then: run(command="bash bench/lent_gpu/run.sh", carry=[".dev"]).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .dev/pytest /tmp/lent-gpu-wheels
PY=".venv/bin/python"
pip_download() { $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any -d "$@"; }
pip_download /tmp/lent-gpu-wheels ray==2.60.0
$PY bench/lent_gpu/strip_ray.py /tmp/lent-gpu-wheels/ray-2.60.0-*.whl .dev/ray.tar.xz
pip_download .dev jsonschema jsonschema-specifications referencing rpds-py pydantic pydantic-core \
  annotated-types typing-inspection tensorboardx
pip_download .dev/pytest pytest pluggy iniconfig packaging
cp ../shared/data/cifar10-jpeg.tar.gz .dev/
du -sh .dev
