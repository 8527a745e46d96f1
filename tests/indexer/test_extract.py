"""extract: every way a file can be bad ends in SkipFile with a reason a user can act on,
and every awkward-but-valid file decodes to the picture or text a person would see."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

from indexer.errors import SkipFile
from indexer.extract import ExtractOptions, PreparedImage, PreparedText, chunk_text, fit_square, prepare
from indexer.scan import FileFact, scan
from tests.indexer import badfiles as bf

REPO = Path(__file__).resolve().parents[2]
OPTS = ExtractOptions()


def write(folder: Path, name: str, data: bytes | str) -> str:
    path = folder / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return str(path)


def image_of(folder: Path, name: str, data: bytes, options: ExtractOptions = OPTS) -> PreparedImage:
    prepared = prepare(write(folder, name, data), "image", options)
    assert isinstance(prepared, PreparedImage)
    return prepared


def text_of(folder: Path, name: str, data: bytes | str, options: ExtractOptions = OPTS) -> PreparedText:
    prepared = prepare(write(folder, name, data), "text", options)
    assert isinstance(prepared, PreparedText)
    return prepared


def skip_reason(path: str, kind: str, options: ExtractOptions = OPTS) -> str:
    with pytest.raises(SkipFile) as info:
        prepare(path, kind, options)
    assert info.value.reason == str(info.value)
    return info.value.reason


# --- bad input is skipped with its reason ----------------------------------------------

@pytest.mark.parametrize("name, data, kind, expected", [
    ("truncated.jpg", bf.truncated(bf.encode(bf.noise_image(), "JPEG", quality=95)), "image", "truncated"),
    ("truncated.png", bf.truncated(bf.encode(bf.noise_image(), "PNG")), "image", "truncated"),
    ("random.jpg", np.random.default_rng(1).bytes(5000), "image", "not an image"),
    ("list.jpg", b"eggs\nmilk\nbread\n", "image", "not an image"),
    ("empty.jpg", b"", "image", "empty file"),
    ("empty.txt", b"", "text", "empty file"),
    ("bomb.png", bf.bomb_png(40_000, 40_000), "image", "decompression bomb"),
    # over the limit but under twice it: Pillow only warns, which must still be refused
    ("big.png", bf.bomb_png(15_000, 15_000), "image", "decompression bomb"),
    ("latin1.txt", "na\u00efve caf\u00e9".encode("latin-1"), "text", "not valid UTF-8"),
    ("program.txt", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), "text", "binary file"),
    ("blank.md", " \n\n\t\n ", "text", "no text"),
    ("empty.html", "<html><head><script>x()</script></head><body>  </body></html>", "text", "no text"),
])
def test_bad_files_are_skipped_with_a_reason(tmp_path, name, data, kind, expected):
    reason = skip_reason(write(tmp_path, name, data), kind)
    assert expected in reason


def test_bomb_header_is_refused_without_allocating_its_pixels(tmp_path):
    data = bf.bomb_png(40_000, 40_000)
    assert len(data) < 200  # the point of a bomb: tiny file, huge claim
    reason = skip_reason(write(tmp_path, "bomb.png", data), "image")
    assert "1600000000" in reason  # says how big it claimed to be


@pytest.mark.parametrize("max_pixels", [1_000, 3_000])  # 64x64 = 4096: over 2x the limit, and between 1x and 2x
def test_max_pixels_option_refuses_a_normal_image_over_the_limit(tmp_path, max_pixels):
    path = write(tmp_path, "ok.png", bf.encode(bf.split_image(64, 64), "PNG"))
    reason = skip_reason(path, "image", ExtractOptions(max_pixels=max_pixels))
    assert "decompression bomb" in reason
    # the limit is per call: the default options still accept the same file
    assert prepare(path, "image", OPTS).pixels.shape == (224, 224, 3)


def test_text_over_the_size_limit_is_skipped(tmp_path):
    path = write(tmp_path, "big.txt", "word " * 300_000)  # 1.5 MB
    assert "larger than 1 MB" in skip_reason(path, "text", ExtractOptions(max_text_bytes=1024 * 1024))


def test_a_folder_named_like_an_image_is_skipped_not_crashed_on(tmp_path):
    folder = tmp_path / "holiday.jpg"
    folder.mkdir()
    assert "not a regular file" in skip_reason(str(folder), "image")


def test_a_file_that_vanishes_after_the_scan_is_skipped(tmp_path):
    write(tmp_path, "gone.jpg", bf.encode(bf.split_image(), "JPEG"))
    write(tmp_path, "gone.txt", "soon gone")
    facts = [f for f in scan([tmp_path]) if isinstance(f, FileFact)]
    assert len(facts) == 2
    for fact in facts:
        os.remove(fact.path)
    for fact in facts:
        assert "vanished" in skip_reason(fact.path, fact.kind)


_AS_NOBODY = """
import json, os, sys
from PIL import Image
Image.init()  # load every plugin while we may still read the interpreter's files
from indexer.errors import SkipFile
from indexer.extract import ExtractOptions, prepare
os.setgroups([]); os.setgid(65534); os.setuid(65534)
out = {}
for path, kind in json.loads(sys.argv[1]):
    try:
        prepare(path, kind, ExtractOptions())
        out[path] = None
    except SkipFile as exc:
        out[path] = exc.reason
print(json.dumps(out))
"""


def prepare_without_permission(paths_kinds: list[tuple[str, str]]) -> dict[str, str | None]:
    """prepare() each path as a user who cannot read them; returns {path: skip reason}."""
    if os.geteuid() != 0:  # chmod is enough for an ordinary user
        out: dict[str, str | None] = {}
        for path, kind in paths_kinds:
            try:
                prepare(path, kind, OPTS)
                out[path] = None
            except SkipFile as exc:
                out[path] = exc.reason
        return out
    # root reads through chmod 000, so drop to nobody in a child after its imports
    proc = subprocess.run([sys.executable, "-c", _AS_NOBODY, json.dumps(paths_kinds)], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def world_dir():
    """A temp dir that nobody (uid 65534) can enter, unlike root's private pytest tmp_path."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="searchd-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_permission_denied_is_skipped_and_readable_neighbours_still_work(world_dir):
    locked_img = write(world_dir, "locked.jpg", bf.encode(bf.split_image(), "JPEG"))
    locked_txt = write(world_dir, "locked.txt", "secret diary")
    open_txt = write(world_dir, "open.txt", "public notes")
    for path in (locked_img, locked_txt):
        os.chmod(path, 0o000)
    os.chmod(open_txt, 0o644)
    reasons = prepare_without_permission([(locked_img, "image"), (locked_txt, "text"), (open_txt, "text")])
    assert "permission denied" in reasons[locked_img]
    assert "permission denied" in reasons[locked_txt]
    assert reasons[open_txt] is None


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_every_bad_file_in_the_shared_corpus_is_skipped_and_every_good_one_prepared(tmp_path):
    expected = bf.build_bad_corpus(tmp_path)
    seen = set()
    for fact in scan([tmp_path]):
        if not isinstance(fact, FileFact):
            continue
        name = os.path.relpath(fact.path, tmp_path)
        seen.add(name)
        assert name in expected, f"unexpected file {name}"
        if expected[name] is None:
            prepare(fact.path, fact.kind, OPTS)  # must not raise
        else:
            assert expected[name] in skip_reason(fact.path, fact.kind), name
    scan_level = {"broken_link.jpg", "loop/again", bf.NON_UTF8_SHOWN, "fifo.png"}
    assert seen == set(expected) - scan_level


# --- awkward images decode to what a person would see ----------------------------------

def mean_rgb(pixels: np.ndarray) -> np.ndarray:
    return pixels.reshape(-1, 3).astype(np.float64).mean(axis=0)


def test_cmyk_jpeg_comes_out_red_in_rgb(tmp_path):
    prepared = image_of(tmp_path, "cmyk.jpg", bf.cmyk_jpeg((0, 255, 255, 0)))
    r, g, b = mean_rgb(prepared.pixels)
    assert r > 200 and g < 60 and b < 60, (r, g, b)


def test_16bit_grey_png_keeps_its_gradient(tmp_path):
    prepared = image_of(tmp_path, "ramp16.png", bf.gray16_png(256, 256))
    row = prepared.pixels[112, :, 0].astype(int)
    assert row[0] < 20 and row[-1] > 235, row  # black on the left, white on the right
    assert np.all(np.diff(row) >= -1)  # and rising in between
    assert len(np.unique(row)) > 100


@pytest.mark.parametrize("value, grey", [(0, 0), (32768, 128), (65535, 255)])
def test_16bit_flat_grey_keeps_its_brightness(tmp_path, value, grey):
    prepared = image_of(tmp_path, f"flat{value}.png", bf.gray16_flat_png(value))
    assert np.all(np.abs(prepared.pixels.astype(int) - grey) <= 1), prepared.pixels[0, 0]


def test_palette_png_with_transparency_is_composited_on_white(tmp_path):
    prepared = image_of(tmp_path, "pal.png", bf.palette_alpha_png((64, 32)))
    assert prepared.metadata["width"] == 64
    left, right = prepared.pixels[112, 10], prepared.pixels[112, 213]
    assert left.tolist() == [255, 255, 255]
    assert right[0] > 240 and right[1] < 15 and right[2] < 15


@pytest.mark.parametrize("mode, colour, expected", [
    ("RGBA", (0, 0, 0, 0), (255, 255, 255)),      # invisible black is white paper
    ("RGBA", (255, 0, 0, 255), (255, 0, 0)),
    ("RGBA", (0, 0, 255, 128), (127, 127, 255)),  # half see-through blue over white
    ("LA", (0, 0), (255, 255, 255)),
])
def test_alpha_is_composited_on_white(tmp_path, mode, colour, expected):
    data = bf.encode(Image.new(mode, (40, 40), colour), "PNG")
    prepared = image_of(tmp_path, "alpha.png", data)
    assert np.all(np.abs(prepared.pixels.astype(int) - expected) <= 2), prepared.pixels[0, 0]


def test_animated_gif_gives_its_first_frame_and_frame_count(tmp_path):
    prepared = image_of(tmp_path, "anim.gif", bf.animated_gif((bf.RED, bf.BLUE, bf.GREEN)))
    r, g, b = mean_rgb(prepared.pixels)
    assert r > 240 and g < 15 and b < 15
    assert prepared.metadata["frames"] == 3
    assert prepared.metadata["format"] == "GIF"


def test_still_image_has_no_frame_count(tmp_path):
    assert "frames" not in image_of(tmp_path, "still.png", bf.encode(bf.split_image(), "PNG")).metadata


def test_exif_orientation_6_turns_the_picture_upright(tmp_path):
    prepared = image_of(tmp_path, "turned.jpg", bf.rotated_jpeg(6, width=80, height=40))
    meta = prepared.metadata
    assert meta["orientation"] == 6
    assert (meta["width"], meta["height"]) == (40, 80)  # as displayed, not as stored
    # stored left=red/right=blue; turned 90 degrees clockwise, red is on top
    top, bottom = mean_rgb(prepared.pixels[:60]), mean_rgb(prepared.pixels[-60:])
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom
    thumb = Image.open(io.BytesIO(prepared.thumbnail))
    assert thumb.height > thumb.width


def test_exif_facts_become_metadata(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Acme"
    exif[0x0110] = "Shooter 9"
    exif.get_ifd(ExifTags.IFD.Exif)[0x9003] = "2021:07:04 18:30:05"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update({1: "N", 2: (52.0, 30.0, 0.0), 3: "W", 4: (1.0, 15.0, 0.0)})
    data = bf.encode(bf.split_image(), "JPEG", exif=exif.tobytes())
    meta = image_of(tmp_path, "exif.jpg", data).metadata
    assert meta["make"] == "Acme" and meta["model"] == "Shooter 9"
    assert meta["taken_at"] == "2021-07-04T18:30:05"
    assert meta["gps"] == {"lat": 52.5, "lon": -1.25}


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_garbage_exif_does_not_lose_the_picture(tmp_path):
    prepared = image_of(tmp_path, "odd.jpg", bf.jpeg_with_broken_exif())
    r, g, b = mean_rgb(prepared.pixels)
    assert g > 120 and r < 40 and b < 40


def test_big_jpeg_draft_decode_looks_like_a_full_decode(tmp_path):
    data = bf.big_photo_jpeg(3000, 2000)
    prepared = image_of(tmp_path, "big.jpg", data)
    full = fit_square(Image.open(io.BytesIO(data)).convert("RGB"), OPTS.image_size)
    assert prepared.pixels.shape == full.shape == (224, 224, 3)
    assert np.allclose(mean_rgb(prepared.pixels), mean_rgb(full), atol=3)
    assert np.abs(prepared.pixels.astype(int) - full.astype(int)).mean() < 4
    assert (prepared.metadata["width"], prepared.metadata["height"]) == (3000, 2000)  # of the original


@pytest.mark.parametrize("size", [(3000, 2000), (300, 900), (40, 30)])
def test_thumbnail_is_webp_within_thumb_size(tmp_path, size):
    prepared = image_of(tmp_path, "t.jpg", bf.encode(bf.split_image(*size), "JPEG"), ExtractOptions(thumb_size=128))
    assert prepared.thumbnail[:4] == b"RIFF" and prepared.thumbnail[8:12] == b"WEBP"
    thumb = Image.open(io.BytesIO(prepared.thumbnail))
    assert thumb.format == "WEBP"
    assert max(thumb.size) <= 128
    assert abs(thumb.width / thumb.height - size[0] / size[1]) < 0.1  # keeps the shape


def test_pixels_match_the_image_size_option(tmp_path):
    prepared = image_of(tmp_path, "p.png", bf.encode(bf.split_image(), "PNG"), ExtractOptions(image_size=64))
    assert prepared.pixels.shape == (64, 64, 3) and prepared.pixels.dtype == np.uint8


@pytest.mark.parametrize("size", [(1, 20_000), (20_000, 1), (3, 6_000)])
def test_extreme_aspect_ratio_is_cheap_and_square(tmp_path, size):
    # a one-pixel rule 20000 px long must not be blown up to 224 x 4.5 million first
    # (that took gigabytes and ~20 s; cropping first takes milliseconds)
    data = bf.encode(Image.new("RGB", size, bf.GREEN), "PNG")
    started = time.perf_counter()
    prepared = image_of(tmp_path, "strip.png", data)
    assert time.perf_counter() - started < 3
    assert prepared.pixels.shape == (224, 224, 3)
    assert np.all(np.abs(prepared.pixels.astype(int) - bf.GREEN) <= 2)


def test_same_bytes_give_the_same_content_hash(tmp_path):
    data = bf.encode(bf.split_image(), "PNG")
    a, b = image_of(tmp_path, "a.png", data), image_of(tmp_path, "b.png", data)
    c = image_of(tmp_path, "c.png", bf.encode(bf.split_image(82, 40), "PNG"))
    assert a.content_hash == b.content_hash != c.content_hash


# --- text ------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding, bom", [("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"),
                                           ("utf-16-be", b"\xfe\xff")])
def test_text_with_a_byte_order_mark_decodes(tmp_path, encoding, bom):
    body = "Caf\u00e9 notes\n\nThe cr\u00e8me br\u00fbl\u00e9e was good."
    prepared = text_of(tmp_path, "bom.txt", bom + body.encode(encoding))
    joined = "\n".join(prepared.passages)
    assert "\ufeff" not in joined
    assert "Caf\u00e9 notes" in joined and "cr\u00e8me br\u00fbl\u00e9e" in joined
    assert prepared.metadata["title"] == "Caf\u00e9 notes"


def test_markdown_title_is_its_first_heading(tmp_path):
    prepared = text_of(tmp_path, "n.md", "\n\n## Boat log ##\n\nWe sailed.\n")
    assert prepared.metadata["title"] == "Boat log"


def test_html_is_stripped_of_tags_scripts_and_styles(tmp_path):
    prepared = text_of(tmp_path, "page.html", bf.HTML_PAGE)
    text = "\n".join(prepared.passages)
    assert "Fishing boats" in text and "Boats & nets at dawn." in text and "Gulls follow them home." in text
    for hidden in ("<", ">", "secret", "color", "javascript", "doctype"):
        assert hidden not in text, hidden
    assert prepared.metadata["title"] == "Harbour Notes"  # one line, spaces tidied
    assert "Harbour" not in text  # the title is metadata, not body text


def test_html_title_spread_over_lines_becomes_one_line(tmp_path):
    page = "<html><head><title>\n    Quarterly\n    Report\n  </title></head><body><p>Numbers.</p></body></html>"
    assert text_of(tmp_path, "r.htm", page).metadata["title"] == "Quarterly Report"


def words(text: str) -> list[str]:
    return text.split()


def assert_no_word_lost(text: str, passages: list[str]) -> None:
    found = set()
    for passage in passages:
        found.update(words(passage))
    lost = [w for w in words(text) if w not in found]
    assert not lost, lost[:10]


def prose(n: int = 60) -> str:
    sentences = [f"Sentence {i} talks about boat {i % 7}, version 3.{i}, see www.example{i}.com today."
                 for i in range(n)]
    paragraphs = [" ".join(sentences[i:i + 6]) for i in range(0, n, 6)]
    return "# Heading\n\n" + "\n\n".join(paragraphs)


def test_chunks_stay_near_the_target_size_and_lose_no_words():
    text = prose()
    passages = chunk_text(text, 300)
    assert len(passages) > 5
    assert max(len(p) for p in passages) <= 300
    assert np.median([len(p) for p in passages]) >= 150
    assert_no_word_lost(text, passages)


def test_sentences_are_not_split_inside_numbers_or_web_addresses():
    text = " ".join(["Pi is 3.14159 and the page is docs.example.org today."] * 30)
    passages = chunk_text(text, 200)
    assert len(passages) > 1
    assert all("3. 14159" not in p and "example. org" not in p for p in passages)
    assert_no_word_lost(text, passages)


def test_chunks_end_at_sentence_boundaries_when_they_can():
    text = " ".join(f"This is sentence number {i} of the story." for i in range(80))
    passages = chunk_text(text, 250)
    assert all(p.endswith(".") for p in passages)


def test_short_document_is_one_passage():
    assert chunk_text("Just one line.", 600) == ["Just one line."]


def test_empty_text_has_no_passages():
    assert chunk_text("", 600) == [] and chunk_text("\n\n  \n", 600) == []


def test_chinese_without_spaces_splits_at_full_stops_and_keeps_every_character():
    text = bf.CHINESE  # 690 characters, no spaces, sentences end in 。！？
    passages = chunk_text(text, 100)
    assert len(passages) >= 7
    assert max(len(p) for p in passages) <= 100
    assert all(p[-1] in "。！？" for p in passages)
    assert "".join(passages) == text  # nothing lost, no spaces invented


def test_one_huge_blob_without_punctuation_or_spaces_is_hard_cut():
    blob = "".join(chr(ord("a") + i % 26) for i in range(5000))
    passages = chunk_text(blob, 600)
    assert all(len(p) <= 600 for p in passages)
    assert "".join(passages) == blob


def test_huge_run_of_words_without_punctuation_is_cut_between_words():
    text = " ".join(f"item{i}" for i in range(1500))
    passages = chunk_text(text, 400)
    assert all(len(p) <= 400 for p in passages)
    assert_no_word_lost(text, passages)


def test_prepared_text_reports_passages_and_size(tmp_path):
    text = prose()
    prepared = text_of(tmp_path, "story.txt", text, ExtractOptions(passage_chars=300))
    assert prepared.metadata["passages"] == len(prepared.passages) > 5
    assert prepared.metadata["title"] == "Heading"
    assert_no_word_lost(text.replace("# Heading", "Heading"), prepared.passages)
