#!/usr/bin/env bash
# Run HERE (with PyPI reachable) before a GPU session's device call: downloads into .whl/
# the wheels that the GPU machine's image lacks for bench/gpu_index.sh (its python3 is
# CPython 3.12 with torch, torchvision, Pillow, numpy and timm, but no open_clip, FAISS
# or SQLAlchemy). .whl/ is ignored by git; name it in the device call's carry:
#
#   bash bench/gpu_wheels.sh
#   device run: command "bash bench/gpu_index.sh", carry [".whl"], timeout_s 420
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    open_clip_torch==3.3.0 faiss-cpu==1.15.1 sqlalchemy==2.1.9 greenlet ftfy wcwidth
du -sh .whl && ls .whl
