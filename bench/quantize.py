"""int8 dynamic quantization of the CLIP image tower: speed and how close results stay.

    python bench/quantize.py [--clip local-dir:sample_data/models/demo-clip] [--images 200]

Encodes the same images with the fp32 tower and with `--quantize int8` (torch dynamic
quantization of its Linear layers) and prints images/s for both, the cosine between
the two embeddings of each image, and rank agreement: for text-to-image queries (the
24 shape captions) and image-to-image queries, the overlap of the top-10 lists and how
often the first hit is the same. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer.encoders import DEMO_CLIP_DIR  # noqa: E402
from indexer.encoders.clip import ClipEncoder  # noqa: E402
from indexer.encoders.demo_shapes import all_pairs, caption, render_shape  # noqa: E402
from indexer.extract import fit_square  # noqa: E402


def topk(scores: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-scores, axis=1)[:, :k]


def agreement(a: np.ndarray, b: np.ndarray, k: int) -> tuple[float, float]:
    ta, tb = topk(a, k), topk(b, k)
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb)])
    return float(overlap), float(np.mean(ta[:, 0] == tb[:, 0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default=f"local-dir:{DEMO_CLIP_DIR}")
    ap.add_argument("--images", type=int, default=240)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()

    fp32 = ClipEncoder(args.clip).load()
    int8 = ClipEncoder(args.clip, quantize="int8").load()
    rng = np.random.default_rng(99)
    pairs = all_pairs()
    images = [render_shape(*pairs[i % len(pairs)], rng, size=224) for i in range(args.images)]
    pixels = np.stack([fit_square(im, fp32.image_size) for im in images])

    rates = {}
    vectors = {}
    for name, enc in (("fp32", fp32), ("int8", int8)):
        enc.encode_pixels(pixels[:8])
        t = time.perf_counter()
        vectors[name] = np.concatenate([enc.encode_pixels(pixels[i:i + 32]) for i in range(0, len(pixels), 32)])
        rates[name] = len(pixels) / (time.perf_counter() - t)
    texts = fp32.encode_texts([caption(c, s) for c, s in pairs])

    cos = np.sum(vectors["fp32"] * vectors["int8"], axis=1)
    t2i = agreement(texts @ vectors["fp32"].T, texts @ vectors["int8"].T, args.k)
    i2i = agreement(vectors["fp32"] @ vectors["fp32"].T, vectors["int8"] @ vectors["int8"].T, args.k)
    labels = np.array([i % len(pairs) for i in range(args.images)])
    acc = {n: float(np.mean((vectors[n] @ texts.T).argmax(1) == labels)) for n in vectors}

    print(f"model {args.clip}, {args.images} rendered shape images")
    print(f"encode fp32  {rates['fp32']:8.1f} images/s   zero-shot top-1 {acc['fp32']:.3f}")
    print(f"encode int8  {rates['int8']:8.1f} images/s   zero-shot top-1 {acc['int8']:.3f}  "
          f"(speed-up {rates['int8'] / rates['fp32']:.2f}x)")
    print(f"cosine(fp32, int8) per image: mean {cos.mean():.4f}, min {cos.min():.4f}")
    print(f"text->image top-{args.k} overlap {t2i[0]:.3f}, same first hit {t2i[1]:.3f}")
    print(f"image->image top-{args.k} overlap {i2i[0]:.3f}, same first hit {i2i[1]:.3f}")


if __name__ == "__main__":
    main()
