#!/usr/bin/env bash
# GPU indexing throughput in one go (about 2 minutes on one H100/H200, at most 5):
# makes its own JPEGs on all cores, then prints images/s for decode-only (cores, and the
# GPU through indexer.device_decode), encode-only (ViT-B-32, random weights, fp16) and
# the pipeline with and without GPU JPEG decoding, for 12-megapixel photos and for
# 1-megapixel ones.
#
#   bash bench/gpu_index.sh            # from the repository root, with .venv installed
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
# On a bare GPU machine: the wheels bench/gpu_wheels.sh fetched (carried as .whl/)
if ! "$PY" -c "import open_clip, faiss, sqlalchemy" 2>/dev/null && [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
echo "cores: $(nproc)"
echo "== 12 MP JPEGs =="
timeout 140 "$PY" bench/index_throughput.py --device cuda --images 512 --size 4000x3000 \
    --batch-size 256 --cache bench/out/photos-12mp
echo "== 1 MP JPEGs =="
timeout 140 "$PY" bench/index_throughput.py --device cuda --images 8192 --size 1152x864 \
    --batch-size 1024 --cache bench/out/photos-1mp
