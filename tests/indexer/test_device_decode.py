"""JPEG decoding on the encoder's device, beside the worker processes.

These machines have no GPU, so the device is the CPU: torchvision's decode_jpeg runs
the same code path the pipeline takes with CUDA (nvJPEG), and everything around it (the
hand-over from the workers, EXIF orientation, the CLIP crop, thumbnails, falling back to
Pillow) is ours and is what is checked here.
"""

from __future__ import annotations

import io
import numpy as np
import pytest
import torch
import torchvision.io
from PIL import Image, ImageOps

from indexer.catalog import open_catalog
from indexer.datadir import DataDir
from indexer.device_decode import DeviceJpegDecoder, device_decoder, orient, thumbnail_size
from indexer.extract import ExtractOptions, prepare_image
from indexer.pipeline import Indexer, IndexOptions, _Decoder
from indexer.scan import FileFact, scan
from tests.conftest import SAMPLE
from tests.indexer import badfiles


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(orientation):
    rng = np.random.default_rng(orientation)
    arr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    im = Image.fromarray(arr)
    im.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(im))
    got = orient(torch.from_numpy(arr).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    assert got.shape == expected.shape and (got == expected).all()


@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (256, 256), (100, 50), (5000, 7)])
def test_thumbnail_size_is_pillows(size):
    im = Image.new("RGB", size)
    im.thumbnail((256, 256))
    assert thumbnail_size(*size, 256) == im.size


def test_worker_leaves_only_plain_jpegs_to_the_device(tmp_path):
    options = ExtractOptions()
    files = {"photo.jpg": badfiles.big_photo_jpeg(640, 480), "cmyk.jpg": badfiles.cmyk_jpeg(),
             "shape.png": badfiles.encode(badfiles.split_image(), "PNG")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    deferred = prepare_image(str(tmp_path / "photo.jpg"), options, defer_jpeg=True)
    assert deferred.pixels is None and deferred.encoded == files["photo.jpg"]
    assert deferred.metadata["width"] == 640 and deferred.metadata["format"] == "JPEG"
    for name in ("cmyk.jpg", "shape.png"):  # Pillow decodes these at once
        prepared = prepare_image(str(tmp_path / name), options, defer_jpeg=True)
        assert prepared.pixels is not None and prepared.encoded is None and prepared.thumbnail


def test_device_decode_matches_pillow_and_falls_back_on_bad_bytes(tmp_path):
    options = ExtractOptions(image_size=64, thumb_size=48)
    files = {"rotated.jpg": badfiles.rotated_jpeg(6, 80, 40), "photo.jpg": badfiles.big_photo_jpeg(300, 200),
             "grey.jpg": badfiles.encode(Image.new("L", (50, 30), 90), "JPEG")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    deferred = [prepare_image(str(tmp_path / name), options, defer_jpeg=True) for name in files]
    pillow = [prepare_image(str(tmp_path / name), options) for name in files]
    broken = prepare_image(str(tmp_path / "photo.jpg"), options, defer_jpeg=True)
    broken.encoded = badfiles.truncated(broken.encoded)[:200]  # passed the header check, then cut

    out = DeviceJpegDecoder("cpu", options).decode(deferred + [broken])
    for got, want in zip(out, pillow):
        assert got.pixels.shape == want.pixels.shape == (64, 64, 3)
        # both resize with antialiased bicubic; a few levels apart at most, on average
        assert np.abs(got.pixels.astype(int) - want.pixels.astype(int)).mean() < 4
        thumb = Image.open(io.BytesIO(want.thumbnail))
        assert got.thumbnail_pixels.shape == (thumb.height, thumb.width, 3)
    rotated = out[0].pixels
    assert rotated.shape == (64, 64, 3) and rotated[2, 32, 0] > 200 and rotated[-3, 32, 2] > 200  # red on top
    assert out[2].pixels[..., 0].std() < 2  # greyscale came out as flat RGB
    assert isinstance(out[3], str) and "corrupt or truncated" in out[3]  # Pillow's verdict on the same bytes

    small = DeviceJpegDecoder("cpu", options)
    small.pixel_budget = small.float_budget = 40_000  # one picture per device call
    again = small.decode([prepare_image(str(tmp_path / name), options, defer_jpeg=True) for name in files])
    for got, want in zip(again, out):
        assert (got.pixels == want.pixels).all() and (got.thumbnail_pixels == want.thumbnail_pixels).all()


def test_busy_workers_hand_images_to_the_device():
    decoder = _Decoder(2, ExtractOptions(), window=16, defer="busy")
    image = FileFact(path="a.jpg", size=1, mtime_ns=1, kind="image")
    text = FileFact(path="a.txt", size=1, mtime_ns=1, kind="text")
    assert not decoder._should_defer(image, 3)  # a worker will be free soon: the cores keep it
    assert decoder._should_defer(image, 4)  # two queued per worker: the device takes it
    assert not decoder._should_defer(text, 4)  # only images go to the device
    deep = _Decoder(2, ExtractOptions(), window=16, defer="busy", backlog=6)  # covers a batch's device time
    assert not deep._should_defer(image, 4) and deep._should_defer(image, 6)
    assert not _Decoder(2, ExtractOptions(), 16, defer="off")._should_defer(image, 99)
    assert _Decoder(2, ExtractOptions(), 16, defer="all")._should_defer(image, 0)


def test_busy_split_sends_some_photos_each_way(tmp_path):
    """With the workers given a backlog of one, a run over many photos defers some and
    decodes the others on the cores; every photo comes back, in order."""
    for i in range(12):
        (tmp_path / f"{i:02d}.jpg").write_bytes(badfiles.big_photo_jpeg(400 + i, 300))
    facts = sorted(scan([tmp_path]), key=lambda f: f.path)
    decoder = _Decoder(1, ExtractOptions(), window=8, defer="busy")
    decoder.backlog = 1
    results = list(decoder.run(facts))
    assert [f.path for f, _ in results] == [f.path for f in facts]
    deferred = [r.encoded is not None for _, r in results]
    assert any(deferred) and not all(deferred)


def test_device_decoding_is_offered_only_where_it_works(monkeypatch, caplog):
    options = ExtractOptions()
    assert device_decoder(None, options) is None
    assert device_decoder("cpu", options) is not None
    if not torch.cuda.is_available():
        assert device_decoder("cuda", options) is None

    def no_nvjpeg(*args, **kwargs):
        raise RuntimeError("torchvision was built without nvJPEG")

    monkeypatch.setattr(torchvision.io, "decode_jpeg", no_nvjpeg)  # a torchvision build without it
    assert device_decoder("cpu", options) is None
    assert "not available" in caplog.text and "without nvJPEG" in caplog.text


def test_pipeline_with_device_decoding_indexes_like_the_cores(tmp_path, demo_encoders):
    clip, text = demo_encoders
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in (SAMPLE / "images" / "photos").glob("*.jpg"):
        (folder / photo.name).write_bytes(photo.read_bytes())
    (folder / "rotated.jpg").write_bytes(badfiles.rotated_jpeg(6))
    (folder / "cmyk.jpg").write_bytes(badfiles.cmyk_jpeg())
    (folder / "cut.jpg").write_bytes(badfiles.truncated(badfiles.encode(badfiles.noise_image(), "JPEG")))

    def index(name: str, **options):
        data = DataDir(tmp_path / name)
        catalog = open_catalog(data.catalog_path)
        try:
            report = Indexer(data, catalog, clip, text, IndexOptions(workers=2, **options)).run([folder])
            ids = catalog.item_ids("clip", "image").tolist()
            records, stored = catalog.items(ids), catalog.get_vectors(ids)
            vectors = {records[i].path: stored[i] for i in ids}
        finally:
            catalog.close()
        thumbs = {p.name: Image.open(p).size for p in data.thumbs_dir.rglob("*.webp")}
        return report, vectors, thumbs

    cores, cores_vectors, cores_thumbs = index("cores")
    device, device_vectors, device_thumbs = index("device", decode_device="cpu", device_share="all")
    assert sorted(device.added) == sorted(cores.added) and len(device.added) == 8
    assert cores.device_decoded == 0 and device.device_decoded == 7  # every JPEG but the CMYK one
    assert sorted(device.skipped) == sorted(cores.skipped)
    assert [p.rsplit("/", 1)[-1] for p, _ in device.skipped] == ["cut.jpg"]
    assert device_thumbs == cores_thumbs  # same files, same upright sizes
    for path, vector in cores_vectors.items():
        assert float(vector @ device_vectors[path]) > 0.99, path

