"""A corpus of hostile and awkward inputs, built on demand into a folder.

``build_bad_corpus(folder)`` writes every file and returns ``{relative name: expected
substring of the skip reason}``, with ``None`` for the awkward-but-good files that must
be indexed (CMYK, 16-bit, palette, alpha, animated, rotated, BOMs, HTML, Chinese...).
Names are in the form searchd shows them (``display_path``: undecodable bytes as ``\\xNN``).

The byte builders are public so unit tests can make one file at a time. Pure stdlib,
Pillow and numpy: no model, no network, and the whole corpus takes well under a second.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 160, 0)

#: a file name that is not valid UTF-8 (Latin-1 "café.txt")
NON_UTF8_NAME = b"caf\xe9.txt"
NON_UTF8_SHOWN = "caf\\xe9.txt"


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def noise_image(width: int = 160, height: int = 120, seed: int = 7) -> Image.Image:
    """Incompressible pixels, so a file cut in half is cut inside the pixel data."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def bomb_png(width: int = 40_000, height: int = 40_000) -> bytes:
    """A ~100-byte PNG whose header claims ``width`` x ``height`` RGB pixels.

    Written by hand (valid CRCs, one tiny IDAT) so the pixels are never allocated here.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    idat = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def cmyk_jpeg(cmyk=(0, 255, 255, 0), size=(64, 48)) -> bytes:
    """Solid CMYK JPEG; the default ink (no cyan, full magenta and yellow) is red."""
    return encode(Image.new("CMYK", size, cmyk), "JPEG", quality=95)


def gray16_png(width: int = 256, height: int = 32) -> bytes:
    """16-bit greyscale, black on the left to white on the right."""
    ramp = np.linspace(0, 65535, width).round().astype(np.uint16)
    return encode(Image.fromarray(np.tile(ramp, (height, 1))), "PNG")


def gray16_flat_png(value: int, size: int = 32) -> bytes:
    return encode(Image.fromarray(np.full((size, size), value, dtype=np.uint16)), "PNG")


def palette_alpha_png(size=(64, 32)) -> bytes:
    """Palette PNG: left half palette entry 0 (fully transparent), right half red."""
    im = Image.new("P", size, 0)
    im.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)
    im.paste(1, (size[0] // 2, 0, size[0], size[1]))
    return encode(im, "PNG", transparency=0)


def rgba_png(rgba=(0, 0, 0, 0), size=(48, 48)) -> bytes:
    return encode(Image.new("RGBA", size, rgba), "PNG")


def animated_gif(colors=(RED, BLUE, GREEN), size=(40, 40)) -> bytes:
    frames = [Image.new("RGB", size, c) for c in colors]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def split_image(width: int = 80, height: int = 40) -> Image.Image:
    """Left half red, right half blue: shows which way a rotation went."""
    im = Image.new("RGB", (width, height), BLUE)
    im.paste(RED, (0, 0, width // 2, height))
    return im


def rotated_jpeg(orientation: int = 6, width: int = 80, height: int = 40) -> bytes:
    """Stored landscape, tagged to display rotated (6 = turn 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(split_image(width, height), "JPEG", quality=95, exif=exif.tobytes())


def big_photo_jpeg(width: int = 3000, height: int = 2000) -> bytes:
    """A large JPEG with coarse structure (colour quadrants over a gradient)."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    arr = np.empty((height, width, 3), dtype=np.float32)
    arr[..., 0] = 220 * x + 20 * y
    arr[..., 1] = 200 * y
    arr[..., 2] = 255 - 200 * x * y
    arr[: height // 2, : width // 2] = (250, 240, 20)
    return encode(Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB"), "JPEG", quality=90)


def jpeg_with_broken_exif() -> bytes:
    """A good picture behind an APP1 Exif segment full of garbage."""
    good = encode(Image.new("RGB", (32, 32), GREEN), "JPEG", quality=95)
    payload = b"Exif\x00\x00MM\x00\x2a\x00\x00\xff\xff" + b"\xde\xad\xbe\xef" * 8
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return good[:2] + app1 + good[2:]


HTML_PAGE = """<!doctype html>
<html><head><title>Harbour  Notes</title>
<style>body { color: red }</style>
<script>var secret = "do not index";</script></head>
<body><h1>Fishing boats</h1><p>Boats &amp; nets at dawn.</p>
<noscript>enable javascript</noscript><p>Gulls follow them home.</p></body></html>
"""

CHINESE = "今天天气很好。我们去公园散步吧！你想一起来吗？" * 30


def build_bad_corpus(folder: str | os.PathLike, *, hostile_names: bool = True) -> dict[str, str | None]:
    """Write the corpus into ``folder``; return {relative name: expected reason substring | None}.

    ``hostile_names=False`` leaves out what needs a POSIX file system (symlinks, a FIFO,
    a non-UTF-8 file name). Files that vanish or lose permission mid-run cannot be
    written ahead of time; tests make those themselves.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}

    def put(name: str, data: bytes | str, reason: str | None) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        expected[name] = reason

    # Bad: each must be skipped with this reason, and the run must go on.
    put("truncated.jpg", truncated(encode(noise_image(), "JPEG", quality=95)), "truncated")
    put("truncated.png", truncated(encode(noise_image(), "PNG")), "truncated")
    put("random_bytes.jpg", np.random.default_rng(3).bytes(4096), "not an image")
    put("text_named.jpg", "This is a shopping list, not a photo.\n", "not an image")
    put("empty.jpg", b"", "empty file")
    put("empty.txt", b"", "empty file")
    put("bomb.png", bomb_png(), "decompression bomb")
    put("latin1.txt", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1"), "not valid UTF-8")
    put("binary.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)), "binary file")
    put("blank.md", "  \n\n\t \n", "no text")

    # Awkward but good: each must be indexed.
    put("photo.jpg", encode(split_image(), "JPEG"), None)
    put("cmyk.jpg", cmyk_jpeg(), None)
    put("gray16.png", gray16_png(), None)
    put("palette_alpha.png", palette_alpha_png(), None)
    put("rgba_clear.png", rgba_png(), None)
    put("animated.gif", animated_gif(), None)
    put("rotated.jpg", rotated_jpeg(), None)
    put("broken_exif.jpg", jpeg_with_broken_exif(), None)
    put("folder.jpg/inside.png", encode(split_image(), "PNG"), None)  # a folder with an image name
    put("n" * 246 + ".png", encode(split_image(), "PNG"), None)  # 250-byte file name
    put("utf8_bom.txt", b"\xef\xbb\xbfHello from a BOM-prefixed file.\n", None)
    put("utf16.txt", "Hello from UTF-16, caf\u00e9.\n".encode("utf-16"), None)
    put("page.html", HTML_PAGE, None)
    put("chinese.txt", CHINESE, None)
    put("notes.md", "# Notes\n\nPlain words about boats.\n", None)
    put("ignored.pdf", b"%PDF-1.4 not indexed, not reported", None)
    del expected["ignored.pdf"]  # unknown extensions are neither indexed nor skipped

    if hostile_names:
        (root / "broken_link.jpg").symlink_to(root / "missing.jpg")
        expected["broken_link.jpg"] = "broken symlink"
        (root / "loop").mkdir()
        (root / "loop" / "again").symlink_to(root / "loop", target_is_directory=True)
        expected["loop/again"] = "symlink loop"
        fd = os.open(os.path.join(os.fsencode(root), NON_UTF8_NAME), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"latin-1 name\n")
        finally:
            os.close(fd)
        expected[NON_UTF8_SHOWN] = "not valid UTF-8"
        os.mkfifo(root / "fifo.png")
        expected["fifo.png"] = "not a regular file"
    return expected


__all__ = ["build_bad_corpus", "bomb_png", "cmyk_jpeg", "gray16_png", "gray16_flat_png", "palette_alpha_png",
           "rgba_png", "animated_gif", "rotated_jpeg", "big_photo_jpeg", "jpeg_with_broken_exif", "noise_image",
           "split_image", "truncated", "encode", "png_chunk", "HTML_PAGE", "CHINESE", "NON_UTF8_NAME",
           "NON_UTF8_SHOWN", "RED", "BLUE", "GREEN"]
