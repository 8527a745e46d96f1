"""Make the sample photos in sample_data/images/photos/ from scikit-image's bundled data.

Only images that ship inside the installed ``skimage`` package are used (read straight from
``skimage/data/``, so nothing is fetched over the network). Each one is written as a JPEG at
quality 90; two get plausible EXIF (date, camera make/model, and GPS on one) so that metadata
extraction has something to show.

Run:  python bench/make_sample_photos.py [--out sample_data/images/photos]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

# output name -> file bundled in skimage/data (all public domain / CC0, see sample_data/LICENSES.md)
PHOTOS: dict[str, str] = {
    "astronaut.jpg": "astronaut.png",
    "coffee.jpg": "coffee.png",
    "chelsea.jpg": "chelsea.png",
    "rocket.jpg": "rocket.jpg",
    "hubble_deep_field.jpg": "hubble_deep_field.jpg",
    "camera.jpg": "camera.png",
}

MAX_SIDE = 640  # keeps the whole folder well under 2 MB
QUALITY = 90

# EXIF / GPS tag numbers (see the EXIF 2.32 specification)
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_SOFTWARE = 0x0131
TAG_DATETIME = 0x0132
TAG_EXIF_IFD = 0x8769
TAG_GPS_IFD = 0x8825
TAG_DATETIME_ORIGINAL = 0x9003
TAG_DATETIME_DIGITIZED = 0x9004
TAG_GPS_LAT_REF, TAG_GPS_LAT = 0x0001, 0x0002
TAG_GPS_LON_REF, TAG_GPS_LON = 0x0003, 0x0004

# Plausible (invented) camera metadata for two of the photos.
EXIF_FACTS: dict[str, dict] = {
    "coffee.jpg": {
        "make": "Canon",
        "model": "Canon EOS 5D Mark III",
        "taken": "2013:05:14 09:41:27",
        # Pikolo Espresso Bar, Minneapolis (approximate)
        "gps": (44.9503, -93.2880),
    },
    "chelsea.jpg": {
        "make": "NIKON CORPORATION",
        "model": "NIKON D90",
        "taken": "2011:08:02 18:12:05",
    },
}


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes_full = (value - degrees) * 60
    minutes = int(minutes_full)
    seconds = round((minutes_full - minutes) * 60, 2)
    return (float(degrees), float(minutes), seconds)


def build_exif(facts: dict) -> Image.Exif:
    exif = Image.Exif()
    exif[TAG_MAKE] = facts["make"]
    exif[TAG_MODEL] = facts["model"]
    exif[TAG_SOFTWARE] = "searchd bench/make_sample_photos.py"
    exif[TAG_DATETIME] = facts["taken"]
    sub = exif.get_ifd(TAG_EXIF_IFD)
    sub[TAG_DATETIME_ORIGINAL] = facts["taken"]
    sub[TAG_DATETIME_DIGITIZED] = facts["taken"]
    if "gps" in facts:
        lat, lon = facts["gps"]
        gps = exif.get_ifd(TAG_GPS_IFD)
        gps[0x0000] = b"\x02\x02\x00\x00"  # GPSVersionID 2.2.0.0
        gps[TAG_GPS_LAT_REF] = "N" if lat >= 0 else "S"
        gps[TAG_GPS_LAT] = _dms(lat)
        gps[TAG_GPS_LON_REF] = "E" if lon >= 0 else "W"
        gps[TAG_GPS_LON] = _dms(lon)
    return exif


def skimage_data_dir() -> Path:
    import skimage  # imported here so that --help works without it

    return Path(skimage.__file__).parent / "data"


def make(out_dir: Path) -> list[Path]:
    src_dir = skimage_data_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, src_name in PHOTOS.items():
        src = src_dir / src_name
        if not src.is_file():
            raise SystemExit(f"{src} is not bundled with this scikit-image; pick another image")
        with Image.open(src) as im:
            im = im.convert("L" if im.mode in ("L", "I;16", "1") else "RGB")
            im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            kwargs = {"quality": QUALITY, "optimize": True}
            if name in EXIF_FACTS:
                kwargs["exif"] = build_exif(EXIF_FACTS[name])
            dest = out_dir / name
            im.save(dest, "JPEG", **kwargs)
        written.append(dest)
    return written


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=root / "sample_data" / "images" / "photos")
    args = parser.parse_args()
    total = 0
    for path in make(args.out):
        size = path.stat().st_size
        total += size
        with Image.open(path) as im:
            print(f"{path.name:24s} {im.width}x{im.height} {im.mode:3s} {size / 1024:7.1f} KiB")
    print(f"{'total':24s} {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
