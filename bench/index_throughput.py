"""Indexing throughput on 12-megapixel JPEGs: decode-only, encode-only and the pipeline.

    python bench/index_throughput.py [--images 64] [--clip ViT-B-32:random] [--workers 0]

Prints images/s for decoding on all cores (JPEG draft mode), encoding pre-decoded
tensors, and the whole pipeline (scan -> decode -> encode -> commit -> publish), and the
ratio of the pipeline to the slower of the two. Random ViT-B-32 weights are fine for
speed. A benchmark, not a test: the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer.catalog import open_catalog  # noqa: E402
from indexer.datadir import DataDir  # noqa: E402
from indexer.encoders.clip import ClipEncoder  # noqa: E402
from indexer.extract import ExtractOptions  # noqa: E402
from indexer.pipeline import Indexer, IndexOptions, _Decoder  # noqa: E402
from indexer.scan import scan  # noqa: E402


class NoText:
    """Photos only: the text encoder is never called; it only needs an identity."""

    space = "text"

    @property
    def identity(self):
        from indexer.encoders import ModelIdentity
        return ModelIdentity("none", "", "", 1)

    def encode_texts(self, texts):
        raise AssertionError("no text in this benchmark")


def make_photos(folder: Path, count: int, width: int, height: int) -> list[Path]:
    """Photo-like JPEGs (smooth colour fields + grain), made once and reused."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo-{width}x{height}-{i:04d}.jpg"
        if not path.exists():
            rng = np.random.default_rng(i)
            small = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize(
                (width, height), Image.Resampling.BICUBIC)
            grain = rng.normal(0, 6, (height, width, 1)).astype(np.int16)
            pixels = np.clip(np.asarray(small, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def gpu_decode_rate(photos: list[Path], size: int) -> float:
    """Decode JPEG bytes on the GPU (nvjpeg), resize and centre-crop there."""
    import torch
    import torchvision
    from torchvision.transforms.v2 import functional as TF

    datas = [torchvision.io.read_file(str(p)) for p in photos]
    torchvision.io.decode_jpeg(datas[:2], device="cuda")
    torch.cuda.synchronize()
    t = time.perf_counter()
    for start in range(0, len(datas), 64):
        images = torchvision.io.decode_jpeg(datas[start:start + 64], device="cuda")
        batch = torch.stack([TF.center_crop(TF.resize(im, size, antialias=True), [size, size]) for im in images])
        del batch
    torch.cuda.synchronize()
    return len(datas) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT of the generated JPEGs")
    ap.add_argument("--clip", default="ViT-B-32:random")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quantize", default="none", choices=("none", "int8"),
                    help="int8 dynamic quantization of the image tower (CPU)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0, help="decoding processes (0 = one per core)")
    ap.add_argument("--gpu-decode", action="store_true",
                    help="also time torchvision.io.decode_jpeg on the CUDA device (decode-only)")
    ap.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "out" / "photos")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    workers = args.workers or os.cpu_count() or 1

    t = time.perf_counter()
    photos = make_photos(args.cache, args.images, width, height)
    print(f"{len(photos)} JPEGs of {width}x{height} ({width * height / 1e6:.0f} MP) ready in "
          f"{time.perf_counter() - t:.1f}s under {args.cache}")

    clip = ClipEncoder(args.clip, device=args.device, quantize=args.quantize).load()
    print(f"model {args.clip} ({args.quantize}) on {args.device}, input {clip.image_size}px; {workers} decode workers; "
          f"{os.cpu_count()} cores; {platform.processor() or platform.machine()}")
    options = ExtractOptions(image_size=clip.image_size)
    facts = list(scan(photos))

    # decode only: the pool on all cores, nothing else running
    decoder = _Decoder(workers, options, window=4 * workers)
    t = time.perf_counter()
    pixels = [result.pixels for _, result in decoder.run(facts)]
    decode_s = time.perf_counter() - t
    decode_rate = len(pixels) / decode_s

    # encode only: pre-decoded tensors, model warm
    batch = np.stack(pixels)
    clip.encode_pixels(batch[: min(4, len(batch))])
    t = time.perf_counter()
    for start in range(0, len(batch), args.batch_size):
        clip.encode_pixels(batch[start:start + args.batch_size])
    encode_s = time.perf_counter() - t
    encode_rate = len(batch) / encode_s

    # the pipeline, end to end, into a fresh data dir (models already loaded)
    data_root = Path(tempfile.mkdtemp(prefix="searchd-bench-"))
    try:
        data = DataDir(data_root)
        catalog = open_catalog(data.catalog_path)
        indexer = Indexer(data, catalog, clip, NoText(),
                          IndexOptions(batch_size=args.batch_size, workers=workers, publish_every_s=3600))
        t = time.perf_counter()
        report = indexer.run(photos)
        pipeline_s = time.perf_counter() - t
        catalog.close()
    finally:
        shutil.rmtree(data_root, ignore_errors=True)
    pipeline_rate = report.images / pipeline_s

    if args.gpu_decode:
        gpu_rate = gpu_decode_rate(photos, clip.image_size)
        print(f"gpu-decode    {gpu_rate:8.1f} images/s  (torchvision.io.decode_jpeg on the device, "
              f"resize + crop to {clip.image_size}px, batches of 64)")

    slower = min(decode_rate, encode_rate)
    # When decoding and encoding share the same cores, neither can run at its solo speed
    # while the other works: the pipeline can at best reach 1 / (1/decode + 1/encode).
    shared = 1 / (1 / decode_rate + 1 / encode_rate)
    print(f"decode-only   {decode_rate:8.1f} images/s  ({decode_s:.1f}s, JPEG draft mode, {workers} processes)")
    print(f"encode-only   {encode_rate:8.1f} images/s  ({encode_s:.1f}s, batch {args.batch_size})")
    print(f"pipeline      {pipeline_rate:8.1f} images/s  ({pipeline_s:.1f}s incl. scan, commit, thumbnails, publish)")
    print(f"ratio         {pipeline_rate / slower:8.2f}  pipeline / slower of decode and encode (goal >= 0.9)")
    print(f"shared-CPU    {shared:8.1f} images/s  ceiling when decode and encode compete for the same cores; "
          f"pipeline reaches {pipeline_rate / shared:.2f} of it")


if __name__ == "__main__":
    main()
