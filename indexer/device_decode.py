"""JPEG decoding on the encoder's device (nvJPEG through torchvision on CUDA).

On a GPU machine the CPU cores cannot decode photos as fast as the GPU embeds them,
so the pipeline hands part of the JPEGs to the GPU: a worker process only reads the
file and its header (``prepare(..., defer_jpeg=True)``), and the main process decodes a
batch here, turns each picture upright (EXIF orientation), makes the CLIP input
(centre square, bicubic, as ``extract.fit_square``) and the thumbnail's pixels on the
device, and brings both back. Whatever the device cannot decode goes back to Pillow with
the same bytes, so a file gets the same verdict on either path.

Runs in the main process (torch is already loaded there); on a CPU device it runs the
same code with libjpeg-turbo, which is how the tests exercise it.
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
from PIL import Image

from indexer.errors import SkipFile
from indexer.extract import ExtractOptions, PreparedImage, decode_prepared

log = logging.getLogger(__name__)


def orient(image, orientation: int | None):
    """Turn a (C, H, W) tensor upright the way ``PIL.ImageOps.exif_transpose`` does."""
    import torch

    if orientation == 2:
        return torch.flip(image, [2])
    if orientation == 3:
        return torch.flip(image, [1, 2])
    if orientation == 4:
        return torch.flip(image, [1])
    if orientation == 5:
        return image.transpose(1, 2)
    if orientation == 6:
        return torch.rot90(image, -1, [1, 2])
    if orientation == 7:
        return torch.flip(image.transpose(1, 2), [1, 2])
    if orientation == 8:
        return torch.rot90(image, 1, [1, 2])
    return image


def thumbnail_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) that fits in ``size`` x ``size`` keeping the aspect, never enlarged."""
    scale = min(1.0, size / width, size / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class DeviceJpegDecoder:
    """Decodes batches of deferred JPEGs (``PreparedImage.encoded``) on ``device``."""

    #: decoded pixels one decode call may hold on the device (uint8 RGB: 3 bytes each)
    pixel_budget = 512_000_000
    #: bytes of float pixels one resize call may hold on the device
    float_budget = 512 * 1024 * 1024

    def __init__(self, device: str, options: ExtractOptions):
        self.device = device
        self.options = options

    def decode(self, items: list[PreparedImage]) -> list[PreparedImage | str]:
        """Each item decoded (pixels + ``thumbnail_pixels``) or a skip reason, in order."""
        out: list[PreparedImage | str] = []
        chunk: list[PreparedImage] = []
        pixels = 0
        for item in items:
            size = item.metadata.get("width", 0) * item.metadata.get("height", 0)
            if chunk and pixels + size > self.pixel_budget:
                out += self._decode_chunk(chunk)
                chunk, pixels = [], 0
            chunk.append(item)
            pixels += size
        if chunk:
            out += self._decode_chunk(chunk)
        return out

    def _decode_chunk(self, items: list[PreparedImage]) -> list[PreparedImage | str]:
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        datas = [torch.frombuffer(bytearray(item.encoded), dtype=torch.uint8) for item in items]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision 0.29 flags its image I/O as deprecated
            try:
                images = decode_jpeg(datas, mode=ImageReadMode.RGB, device=self.device)
            except RuntimeError:
                images = None  # one bad file fails the batch: decode one by one
            if images is None:
                images = []
                for data in datas:
                    try:
                        images.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device))
                    except RuntimeError:
                        images.append(None)
        out: list[PreparedImage | str] = list(items)
        upright = {}
        for i, (item, image) in enumerate(zip(items, images)):
            if image is None:
                out[i] = self._on_cpu(item)
            else:
                upright[i] = orient(image, item.metadata.get("orientation"))
        del images
        # Pictures of one size are resized together, a few at a time (float copies of big
        # photos are large), and come back to host memory in one copy per chunk.
        by_shape: dict[tuple, list[int]] = {}
        for i, image in upright.items():
            by_shape.setdefault(tuple(image.shape), []).append(i)
        with torch.inference_mode():
            for (_, height, width), members in by_shape.items():
                step = max(1, self.float_budget // (height * width * 3 * 4))
                for start in range(0, len(members), step):
                    chunk = members[start:start + step]
                    batch = torch.stack([upright[i] for i in chunk])
                    squares = self._fit_square(batch)
                    thumbs = self._thumbnail(batch)
                    for j, i in enumerate(chunk):
                        item = items[i]
                        item.pixels, item.thumbnail_pixels, item.encoded = squares[j], thumbs[j], None
        return out

    def _on_cpu(self, item: PreparedImage) -> PreparedImage | str:
        try:
            return decode_prepared(item.path, item.encoded, item.content_hash, self.options)
        except SkipFile as exc:
            return exc.reason

    def _resize(self, batch, height: int, width: int, mode: str) -> np.ndarray:
        """(n, 3, H, W) uint8 on the device -> (n, height, width, 3) uint8 in host memory."""
        import torch

        out = torch.nn.functional.interpolate(batch.float(), size=(height, width), mode=mode,
                                              antialias=True, align_corners=False)
        return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def _fit_square(self, batch) -> np.ndarray:
        _, _, height, width = batch.shape
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        size = self.options.image_size
        return self._resize(batch[:, :, top:top + side, left:left + side], size, size, "bicubic")

    def _thumbnail(self, batch) -> np.ndarray:
        _, _, height, width = batch.shape
        w, h = thumbnail_size(width, height, self.options.thumb_size)
        return self._resize(batch, h, w, "bilinear")


def device_decoder(device: str | None, options: ExtractOptions) -> DeviceJpegDecoder | None:
    """A decoder for ``device`` when torchvision can decode JPEGs there, else None. It
    decodes a small JPEG first: a torchvision built without nvJPEG fails here, once,
    instead of on every batch."""
    if not device:
        return None
    try:
        import torch
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError:
        return None
    if device.startswith("cuda") and not torch.cuda.is_available():
        return None
    probe = io.BytesIO()
    Image.new("RGB", (16, 16)).save(probe, "JPEG")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            decode_jpeg([torch.frombuffer(bytearray(probe.getvalue()), dtype=torch.uint8)], device=device)
    except (RuntimeError, NotImplementedError) as exc:
        log.warning("JPEG decoding on %s is not available (%s); the CPU decodes every image", device, exc)
        return None
    return DeviceJpegDecoder(device, options)
