#!/usr/bin/env bash
# GPU indexing throughput in one go (at most ~5 minutes on one H100/H200):
# makes its own JPEGs, then prints images/s for decode-only, encode-only (ViT-B-32,
# random weights, fp16) and the pipeline, for 12-megapixel photos and for 1-megapixel ones.
#
#   bash bench/gpu_index.sh            # from the repository root, with .venv installed
#
# Also prints GPU JPEG decoding (torchvision.io.decode_jpeg on the device) for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
echo "cores: $(nproc)"
echo "== 12 MP JPEGs =="
timeout 150 "$PY" bench/index_throughput.py --device cuda --images 400 --size 4000x3000 \
    --batch-size 256 --gpu-decode
echo "== 1 MP JPEGs =="
timeout 150 "$PY" bench/index_throughput.py --device cuda --images 6000 --size 1152x864 \
    --batch-size 1024 --gpu-decode
