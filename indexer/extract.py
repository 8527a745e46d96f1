"""Open files safely and turn them into what the encoders need.

Runs inside decoding worker processes, so it imports neither torch nor the
catalog: an image becomes a uint8 array at the model's input size plus a WebP
thumbnail and its metadata, all from one decode; a text document becomes
passages. Every way a file can be bad ends in ``SkipFile`` with a reason.
"""

from __future__ import annotations

import hashlib
import html.parser
import io
import re
import struct
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from indexer.errors import SkipFile


@dataclass(frozen=True)
class ExtractOptions:
    image_size: int = 224           # the CLIP tower's input side
    thumb_size: int = 256
    max_pixels: int = 178_956_970
    passage_chars: int = 600        # target passage length
    max_text_bytes: int = 20 * 1024 * 1024


@dataclass
class PreparedImage:
    path: str
    content_hash: str
    pixels: np.ndarray | None      # (S, S, 3) uint8, resized and centre-cropped
    thumbnail: bytes               # WebP
    metadata: dict = field(default_factory=dict)
    kind: str = "image"
    #: the file's bytes, when decoding is left to a device (pixels and thumbnail come later)
    encoded: bytes | None = None
    #: (h, w, 3) uint8 thumbnail pixels from a device decode, to be encoded as WebP
    thumbnail_pixels: np.ndarray | None = None


@dataclass
class PreparedText:
    path: str
    content_hash: str
    passages: list[str]
    metadata: dict = field(default_factory=dict)
    kind: str = "text"


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def read_bytes(path: str, limit: int | None = None) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read() if limit is None else fh.read(limit + 1)
    except FileNotFoundError:
        raise SkipFile("file vanished before it could be read") from None
    except PermissionError:
        raise SkipFile("permission denied") from None
    except IsADirectoryError:
        raise SkipFile("not a regular file") from None
    except OSError as exc:
        raise SkipFile(f"cannot read: {exc.strerror or exc}") from None
    if limit is not None and len(data) > limit:
        raise SkipFile(f"larger than {limit // (1024 * 1024)} MB")
    if not data:
        raise SkipFile("empty file")
    return data


def prepare(path: str, kind: str, options: ExtractOptions, defer_jpeg: bool = False) -> PreparedImage | PreparedText:
    """Read and decode one file; raises SkipFile with the reason when it cannot be used.
    ``defer_jpeg``: a JPEG a device can decode is only read and checked here."""
    if kind == "image":
        return prepare_image(path, options, defer_jpeg)
    return prepare_text(path, options)


# --- images ---------------------------------------------------------------------------

_EXIF_TAGS = {v: k for k, v in ExifTags.TAGS.items()}


@contextmanager
def _image_errors():
    """Every way Pillow can fail on a bad file becomes SkipFile with the reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except SkipFile:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SkipFile(f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise SkipFile("not an image Pillow can read (wrong extension or unknown format)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise SkipFile(f"corrupt or truncated image: {exc}") from None
    except MemoryError:
        raise SkipFile("image too large to decode in memory") from None


def _header(im: Image.Image, options: ExtractOptions) -> dict:
    """Checks the size limit and reads the metadata of the original (upright dimensions,
    EXIF facts), before any pixel is decoded."""
    width, height = im.size
    if width * height > options.max_pixels:
        raise SkipFile(f"image has {width}x{height} pixels, over the limit of "
                       f"{options.max_pixels} (possible decompression bomb)")
    meta = {"width": width, "height": height, "format": im.format}
    meta.update(_exif_facts(im))
    if meta.get("orientation") in (5, 6, 7, 8):
        meta["width"], meta["height"] = height, width
    if getattr(im, "n_frames", 1) > 1:
        meta["frames"] = im.n_frames
    return meta


def open_image(data: bytes, options: ExtractOptions, want: int) -> tuple[Image.Image, dict]:
    """Decode ``data`` to an RGB image whose shorter side is at least ``want`` where the
    file allows (JPEG draft mode decodes big photos at a reduced scale), upright per EXIF.
    Returns the image and metadata of the original (dimensions, EXIF facts)."""
    Image.MAX_IMAGE_PIXELS = options.max_pixels
    with _image_errors():
        im = Image.open(io.BytesIO(data))
        meta = _header(im, options)
        if "frames" in meta:
            im.seek(0)
        if im.format == "JPEG":
            # Draft picks the largest 1/2^k scale still >= the requested size.
            width, height = im.size
            scale = min(width, height) / max(want, 1)
            if scale >= 2:
                im.draft("RGB", (max(1, int(width / scale)), max(1, int(height / scale))))
        im.load()
        im = ImageOps.exif_transpose(im)
        im = _to_rgb(im)
    return im, meta


def jpeg_header(data: bytes, options: ExtractOptions) -> dict | None:
    """Metadata of a JPEG that a device decoder can take (baseline or progressive, RGB or
    greyscale), read from its header alone; None for anything else (CMYK, MPO, not JPEG),
    which Pillow decodes instead."""
    Image.MAX_IMAGE_PIXELS = options.max_pixels
    with _image_errors():
        im = Image.open(io.BytesIO(data))
        if im.format != "JPEG" or im.mode not in ("RGB", "L"):
            return None
        return _header(im, options)


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L"):
        # a known 0..65535 range: scale it, so a flat grey stays that grey
        arr = np.asarray(im, dtype=np.float64) / 257.0
        return Image.fromarray(arr.round().astype(np.uint8), "L").convert("RGB")
    if im.mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im, mask=im.getchannel("A"))
        return background
    if im.mode != "RGB":
        return im.convert("RGB")
    return im


def _exif_facts(im: Image.Image) -> dict:
    try:
        exif = im.getexif()
    except Exception:  # a broken EXIF block must not lose the picture
        return {}
    if not exif:
        return {}
    out: dict = {}
    orientation = exif.get(_EXIF_TAGS["Orientation"])
    if orientation:
        out["orientation"] = int(orientation)
    for tag in ("Make", "Model"):
        value = exif.get(_EXIF_TAGS[tag])
        if isinstance(value, str) and value.strip():
            out[tag.lower()] = value.strip("\x00 ").strip()
    try:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:
        sub = {}
    raw_date = sub.get(_EXIF_TAGS["DateTimeOriginal"]) or exif.get(_EXIF_TAGS["DateTime"])
    taken = _parse_exif_date(raw_date)
    if taken:
        out["taken_at"] = taken
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:
        gps = {}
    if gps:
        lat = _gps_degrees(gps.get(2), gps.get(1))
        lon = _gps_degrees(gps.get(4), gps.get(3))
        if lat is not None and lon is not None:
            out["gps"] = {"lat": round(lat, 6), "lon": round(lon, 6)}
    return out


def _parse_exif_date(raw) -> str | None:
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _gps_degrees(values, ref) -> float | None:
    try:
        d, m, s = (float(v) for v in values)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    deg = d + m / 60 + s / 3600
    return -deg if ref in ("S", "W") else deg


def fit_square(im: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` (bicubic) and centre-crop: CLIP's preprocessing."""
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    # Crop in source coordinates while resizing: resizing the whole picture first
    # blows a 1x20000 strip up to 224x4.5M pixels (gigabytes) before cropping.
    resized = im.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side),
                        reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8)


def make_thumbnail(im: Image.Image, size: int) -> bytes:
    thumb = im.copy()
    # Pillow's filters antialias when they shrink; after the box reduction that
    # reducing_gap makes, bilinear looks the same as Lanczos at half the cost.
    thumb.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return webp_bytes(thumb)


def webp_bytes(im: Image.Image | np.ndarray) -> bytes:
    """The thumbnail file format (WebP); Pillow releases the GIL while it encodes."""
    if isinstance(im, np.ndarray):
        im = Image.fromarray(im)
    buf = io.BytesIO()
    im.save(buf, "WEBP", quality=80, method=2)
    return buf.getvalue()


def prepare_image(path: str, options: ExtractOptions, defer_jpeg: bool = False) -> PreparedImage:
    data = read_bytes(path)
    digest = content_hash(data)
    if defer_jpeg:
        meta = jpeg_header(data, options)
        if meta is not None:
            return PreparedImage(path=path, content_hash=digest, pixels=None, thumbnail=b"", metadata=meta,
                                 encoded=data)
    return decode_prepared(path, data, digest, options)


def decode_prepared(path: str, data: bytes, digest: str, options: ExtractOptions) -> PreparedImage:
    """Pillow's decode of an image's bytes: CLIP pixels, thumbnail and metadata."""
    im, meta = open_image(data, options, want=max(options.image_size, options.thumb_size))
    pixels = fit_square(im, options.image_size)
    thumbnail = make_thumbnail(im, options.thumb_size)
    return PreparedImage(path=path, content_hash=digest, pixels=pixels, thumbnail=thumbnail, metadata=meta)


# --- text -----------------------------------------------------------------------------

class _HTMLText(html.parser.HTMLParser):
    _SKIP = {"script", "style", "noscript", "template"}
    _BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section",
              "article", "header", "footer", "pre", "blockquote", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self._skip += 1
        if tag == "title":
            self._in_title = True
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        if tag == "title":
            self._in_title = False
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self._skip:
            return
        if self._in_title:
            self.title += data
            return
        self.parts.append(data)


def html_to_text(source: str) -> tuple[str, str]:
    parser = _HTMLText()
    parser.feed(source)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r"\n\s*\n\s*", "\n\n", text)
    return " ".join(parser.title.split()), text.strip()


def decode_text(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise SkipFile("not valid UTF-16 text") from None
    if b"\x00" in data[:8192]:
        raise SkipFile("binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SkipFile(f"not valid UTF-8 text (bad byte at offset {exc.start})") from None


# Western stops end a sentence only before a space (not in "3.14" or "example.com");
# CJK stops need none.
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])\s*")


def chunk_text(text: str, target: int = 600) -> list[str]:
    """Split text into passages of about ``target`` characters along paragraph and
    sentence boundaries, so each passage reads on its own."""
    paragraphs = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text)]
    pieces: list[str] = []
    for para in paragraphs:
        if not para:
            continue
        if len(para) <= target:
            pieces.append(para)
            continue
        sentences = [s for s in _SENTENCE_END.split(para) if s]
        buf = ""
        for sentence in sentences:
            while len(sentence) > target:  # one enormous "sentence": hard cut, between words if we can
                cut = sentence.rfind(" ", target // 2, target + 1)
                if cut > 0:
                    head, sentence = sentence[:cut], sentence[cut + 1:]
                else:
                    head, sentence = sentence[:target], sentence[target:]
                if buf:
                    pieces.append(buf)
                    buf = ""
                pieces.append(head)
            if buf and len(buf) + 1 + len(sentence) > target:
                pieces.append(buf)
                buf = sentence
            else:
                buf = f"{buf} {sentence}".strip() if buf and not _is_cjk(buf[-1]) else buf + sentence
        if buf:
            pieces.append(buf)
    # Merge short neighbours (headings, one-liners) into the passage that follows.
    passages: list[str] = []
    carry = ""
    for piece in pieces:
        joined = f"{carry}\n{piece}" if carry else piece
        if len(joined) < target // 4:
            carry = joined
            continue
        if len(joined) > target and carry:
            passages.append(carry)
            joined = piece
        passages.append(joined)
        carry = ""
    if carry:
        if passages and len(passages[-1]) + len(carry) <= target:
            passages[-1] = f"{passages[-1]}\n{carry}"
        else:
            passages.append(carry)
    return passages


def _is_cjk(ch: str) -> bool:
    return ("\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\u3000" <= ch <= "\u303f"
            or "\uff00" <= ch <= "\uffef")  # fullwidth forms: ！？；


def prepare_text(path: str, options: ExtractOptions) -> PreparedText:
    data = read_bytes(path, limit=options.max_text_bytes)
    digest = content_hash(data)
    text = decode_text(data)
    meta: dict = {}
    if path.lower().endswith((".html", ".htm")):
        title, text = html_to_text(text)
        if title:
            meta["title"] = title
    else:
        first = next((line.strip("#=*- \t") for line in text.splitlines() if line.strip("#=*- \t")), "")
        if first:
            meta["title"] = first[:120]
    passages = chunk_text(text, options.passage_chars)
    if not passages:
        raise SkipFile("no text in document")
    meta["passages"] = len(passages)
    meta["chars"] = len(text)
    return PreparedText(path=path, content_hash=digest, passages=passages, metadata=meta)
