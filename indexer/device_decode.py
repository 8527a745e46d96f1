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

import warnings

import numpy as np

from indexer.errors import SkipFile
from indexer.extract import ExtractOptions, PreparedImage, decode_prepared


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

    def __init__(self, device: str, options: ExtractOptions):
        self.device = device
        self.options = options

    def decode(self, items: list[PreparedImage]) -> list[PreparedImage | str]:
        """Each item decoded (pixels + ``thumbnail_pixels``) or a skip reason, in order."""
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
        out: list[PreparedImage | str] = []
        with torch.inference_mode():
            for item, image in zip(items, images):
                if image is None:
                    out.append(self._on_cpu(item))
                    continue
                image = orient(image, item.metadata.get("orientation"))
                item.pixels = self._fit_square(image)
                item.thumbnail_pixels = self._thumbnail(image)
                item.encoded = None
                out.append(item)
        return out

    def _on_cpu(self, item: PreparedImage) -> PreparedImage | str:
        try:
            return decode_prepared(item.path, item.encoded, item.content_hash, self.options)
        except SkipFile as exc:
            return exc.reason

    def _resize(self, image, height: int, width: int, mode: str):
        import torch

        out = torch.nn.functional.interpolate(image[None].float(), size=(height, width), mode=mode,
                                              antialias=True, align_corners=False)
        return out[0].round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()

    def _fit_square(self, image) -> np.ndarray:
        _, height, width = image.shape
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        size = self.options.image_size
        return self._resize(image[:, top:top + side, left:left + side], size, size, "bicubic")

    def _thumbnail(self, image) -> np.ndarray:
        _, height, width = image.shape
        w, h = thumbnail_size(width, height, self.options.thumb_size)
        return self._resize(image, h, w, "bilinear")



def device_decoder(device: str | None, options: ExtractOptions) -> DeviceJpegDecoder | None:
    """A decoder for ``device`` when torchvision can decode JPEGs there, else None."""
    if not device:
        return None
    try:
        import torch
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError:
        return None
    if device.startswith("cuda") and not torch.cuda.is_available():
        return None
    return DeviceJpegDecoder(device, options)
