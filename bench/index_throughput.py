"""Indexing throughput on 12-megapixel JPEGs: decode-only, encode-only and the pipeline.

    python bench/index_throughput.py [--images 128] [--size 4000x3000] [--clip ViT-B-32:random]
    python bench/index_throughput.py --device cuda --batch-size 256     # + GPU JPEG decoding

Prints images/s for decoding on all cores (JPEG draft mode), encoding pre-decoded
tensors, and the whole pipeline (scan -> decode -> encode -> commit -> publish), and the
ratio of the pipeline to the slower of the two. Random ViT-B-32 weights are fine for
speed. A benchmark, not a test: the figures depend on the machine and its load.

With a device decoder (--device-decode busy|all, the default busy on CUDA) it also
times decoding on the device alone (indexer.device_decode, the pipeline's own code:
nvJPEG, orientation, CLIP crop and thumbnail pixels, back in host memory), then runs the
pipeline a second time with the cores and the device decoding together, and compares it
with the decode ceiling the two can combine (cores + device).
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
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
from indexer.device_decode import device_decoder  # noqa: E402
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

    def encode_passages(self, texts):
        raise AssertionError("no text in this benchmark")


def make_photo(path: Path, seed: int, width: int, height: int) -> None:
    """One photo-like JPEG (smooth colour field + grain)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC)
    grain = rng.integers(-12, 13, (height, width, 1), dtype=np.int16)
    pixels = np.clip(np.asarray(small, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def make_photos(folder: Path, count: int, width: int, height: int) -> list[Path]:
    """Photo-like JPEGs, made once (on all cores) and reused."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo-{width}x{height}-{i:05d}.jpg" for i in range(count)]
    missing = [(path, i) for i, path in enumerate(paths) if not path.exists()]
    if missing:
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(make_photo, [p for p, _ in missing], [i for _, i in missing],
                          [width] * len(missing), [height] * len(missing), chunksize=8))
    return paths


def device_decode_rate(decoder, photos: list[Path], batch_size: int) -> float:
    """Decode-only on the device: read bytes in memory, then the pipeline's device decoder."""
    from indexer.extract import PreparedImage

    datas = [p.read_bytes() for p in photos]

    def items(chunk):
        return [PreparedImage(path="", content_hash="", pixels=None, thumbnail=b"", metadata={}, encoded=d)
                for d in chunk]

    decoder.decode(items(datas[:2]))  # warm up (nvJPEG handles, kernels)
    sync()
    t = time.perf_counter()
    for start in range(0, len(datas), batch_size):
        decoder.decode(items(datas[start:start + batch_size]))
    sync()
    return len(datas) / (time.perf_counter() - t)


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_pipeline(photos, clip, workers: int, batch_size: int, decode_device: str | None = None,
                 share: str = "busy") -> tuple[float, float]:
    """The pipeline, end to end, into a fresh data dir (model already loaded) -> (images/s, seconds)."""
    data_root = Path(tempfile.mkdtemp(prefix="searchd-bench-"))
    try:
        data = DataDir(data_root)
        catalog = open_catalog(data.catalog_path)
        indexer = Indexer(data, catalog, clip, NoText(),
                          IndexOptions(batch_size=batch_size, workers=workers, publish_every_s=3600,
                                       decode_device=decode_device, device_share=share))
        t = time.perf_counter()
        report = indexer.run(photos)
        seconds = time.perf_counter() - t
        catalog.close()
    finally:
        shutil.rmtree(data_root, ignore_errors=True)
    if report.images != len(photos):
        raise SystemExit(f"the pipeline indexed {report.images} of {len(photos)} photos: {report.skipped[:3]}")
    return report.images / seconds, seconds


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
    ap.add_argument("--device-decode", default="auto", choices=("auto", "off", "busy", "all"),
                    help="JPEG decoding on the device too: busy = what finds the cores busy, all = every JPEG "
                         "(auto: busy on CUDA, off on CPU)")
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

    pipeline_rate, pipeline_s = run_pipeline(photos, clip, workers, args.batch_size)

    share = args.device_decode if args.device_decode != "auto" else (
        "busy" if args.device.startswith("cuda") else "off")
    device = device_decoder(args.device, options) if share != "off" else None
    if share != "off" and device is None:
        raise SystemExit(f"torchvision cannot decode JPEGs on {args.device} here")

    slower = min(decode_rate, encode_rate)
    # When decoding and encoding share the same cores, neither can run at its solo speed
    # while the other works: the pipeline can at best reach 1 / (1/decode + 1/encode).
    shared = 1 / (1 / decode_rate + 1 / encode_rate)
    print(f"decode-only   {decode_rate:8.1f} images/s  ({decode_s:.1f}s, JPEG draft mode, {workers} processes)")
    print(f"encode-only   {encode_rate:8.1f} images/s  ({encode_s:.1f}s, batch {args.batch_size})")
    print(f"pipeline      {pipeline_rate:8.1f} images/s  ({pipeline_s:.1f}s incl. scan, commit, thumbnails, publish)")
    print(f"ratio         {pipeline_rate / slower:8.2f}  pipeline / slower of decode and encode (goal >= 0.9)")
    if not args.device.startswith("cuda"):
        print(f"shared-CPU    {shared:8.1f} images/s  ceiling when decode and encode compete for the same cores; "
              f"pipeline reaches {pipeline_rate / shared:.2f} of it")
    if device is not None:
        device_rate = device_decode_rate(device, photos, args.batch_size)
        both_rate, both_s = run_pipeline(photos, clip, workers, args.batch_size, args.device, share)
        combined = decode_rate + device_rate
        print(f"device-decode {device_rate:8.1f} images/s  (indexer.device_decode on {args.device}: decode, "
              f"orient, crop + thumbnail pixels, batch {args.batch_size})")
        print(f"decode cores + device {combined:8.1f} images/s  the decode ceiling the two combine")
        print(f"pipeline+dev  {both_rate:8.1f} images/s  ({both_s:.1f}s, device decoding: {share}); "
              f"{both_rate / combined:.2f} of the combined decode ceiling (goal >= 0.8), "
              f"ratio {both_rate / min(combined, encode_rate):.2f} to the slower of combined decode and encode")


if __name__ == "__main__":
    main()
