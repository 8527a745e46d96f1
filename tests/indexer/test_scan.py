"""scan: finds what can be indexed, reports what cannot, and never hangs or crashes on a
hostile tree (loops, broken links, FIFOs, undecodable or very long names)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from indexer.scan import (MAX_PATH_BYTES, OUTSIDE_ROOTS, FileFact, ScanSkip, display_path, kind_of, scan,
                          under_roots)
from tests.indexer import badfiles as bf

REPO = Path(__file__).resolve().parents[2]


def run_scan(roots, exclude=(), limit: int = 10_000):
    """Everything scan yields, bounded so a loop fails the test instead of hanging it."""
    out = list(itertools.islice(scan([os.fspath(r) for r in roots], exclude), limit))
    assert len(out) < limit, "scan did not terminate"
    return out


def facts(entries) -> dict[str, FileFact]:
    return {e.path: e for e in entries if isinstance(e, FileFact)}


def skips(entries) -> dict[str, str]:
    return {e.path: e.reason for e in entries if isinstance(e, ScanSkip)}


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_finds_images_and_text_by_extension_in_any_case(tmp_path):
    for name in ["a.JPG", "b.Png", "c.jpeg", "d.webp", "e.GIF", "f.bmp", "g.TIFF", "h.tif",
                 "notes.TXT", "readme.Md", "x.markdown", "y.rst", "page.HTML", "old.htm", "deep/er/z.png"]:
        touch(tmp_path / name)
    for name in ["doc.pdf", "song.mp3", "script.py", "Makefile", "archive.jpg.zip", ".jpg", "image.jpg~"]:
        touch(tmp_path / name)
    found = facts(run_scan([tmp_path]))
    names = {os.path.relpath(p, tmp_path): f.kind for p, f in found.items()}
    assert names == {
        "a.JPG": "image", "b.Png": "image", "c.jpeg": "image", "d.webp": "image", "e.GIF": "image",
        "f.bmp": "image", "g.TIFF": "image", "h.tif": "image", "deep/er/z.png": "image",
        "notes.TXT": "text", "readme.Md": "text", "x.markdown": "text", "y.rst": "text",
        "page.HTML": "text", "old.htm": "text",
    }
    assert not skips(run_scan([tmp_path]))  # unknown extensions are ignored, not reported


def test_facts_carry_absolute_path_size_and_mtime(tmp_path):
    path = touch(tmp_path / "photo.jpg", b"12345")
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    old_cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        (fact,) = run_scan(["."])
    finally:
        os.chdir(old_cwd)
    assert fact == FileFact(path=str(path), size=5, mtime_ns=1_600_000_000_123_456_789, kind="image")


def test_results_come_in_a_stable_sorted_order(tmp_path):
    for name in ["c.txt", "a.txt", "b/z.txt", "b/a.txt"]:
        touch(tmp_path / name)
    order = [os.path.relpath(e.path, tmp_path) for e in run_scan([tmp_path])]
    assert order == ["a.txt", "b/a.txt", "b/z.txt", "c.txt"]


def test_exclude_globs_match_names_and_paths(tmp_path):
    for name in ["keep.jpg", "draft.tmp.jpg", "node_modules/pkg/logo.png", "private/diary.txt",
                 "public/private.txt", "sub/keep.txt"]:
        touch(tmp_path / name)
    exclude = ["*.tmp.jpg", "node_modules", str(tmp_path / "private") + "/*"]
    names = {os.path.relpath(p, tmp_path) for p in facts(run_scan([tmp_path], exclude))}
    assert names == {"keep.jpg", "public/private.txt", "sub/keep.txt"}


def test_version_control_folders_are_not_walked(tmp_path):
    touch(tmp_path / ".git" / "logo.png")
    touch(tmp_path / ".hg" / "notes.txt")
    touch(tmp_path / ".config" / "kept.txt")  # other dot-folders are ordinary
    names = {os.path.relpath(p, tmp_path) for p in facts(run_scan([tmp_path]))}
    assert names == {".config/kept.txt"}


def test_a_folder_named_like_an_image_is_walked_not_reported(tmp_path):
    touch(tmp_path / "holiday.jpg" / "beach.png")
    entries = run_scan([tmp_path])
    assert list(facts(entries)) == [str(tmp_path / "holiday.jpg" / "beach.png")]
    assert not skips(entries)


def test_symlink_loop_is_reported_once_and_never_hangs(tmp_path):
    touch(tmp_path / "photos" / "cat.jpg")
    (tmp_path / "photos" / "again").symlink_to(tmp_path / "photos", target_is_directory=True)
    (tmp_path / "photos" / "up").symlink_to(tmp_path, target_is_directory=True)  # back to the root
    entries = run_scan([tmp_path])
    assert list(facts(entries)) == [str(tmp_path / "photos" / "cat.jpg")]
    reported = skips(entries)
    assert set(reported) == {str(tmp_path / "photos" / "again"), str(tmp_path / "photos" / "up")}
    assert all("symlink loop" in r for r in reported.values())


def test_a_link_that_points_at_itself_is_reported_not_raised(tmp_path):
    (tmp_path / "self.jpg").symlink_to(tmp_path / "self.jpg")
    touch(tmp_path / "ok.jpg")
    entries = run_scan([tmp_path])
    assert list(facts(entries)) == [str(tmp_path / "ok.jpg")]
    assert list(skips(entries)) == [str(tmp_path / "self.jpg")]


def test_broken_symlink_is_a_skip(tmp_path):
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "gone.pdf").symlink_to(tmp_path / "nowhere.pdf")  # not indexable: not reported either
    assert run_scan([tmp_path]) == [ScanSkip(str(tmp_path / "gone.jpg"), "broken symlink or file vanished")]


def test_symlink_to_a_file_is_followed(tmp_path):
    real = touch(tmp_path / "store" / "real.bin", b"abc")
    (tmp_path / "link.png").symlink_to(real)
    (fact,) = run_scan([tmp_path])
    assert fact.path == str(tmp_path / "link.png") and fact.size == 3 and fact.kind == "image"


def test_fifo_is_a_skip_and_is_never_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")  # opening it for reading would block forever
    assert run_scan([tmp_path]) == [ScanSkip(str(tmp_path / "pipe.txt"), "not a regular file")]


def test_non_utf8_file_name_is_a_printable_skip(tmp_path):
    fd = os.open(os.path.join(os.fsencode(tmp_path), bf.NON_UTF8_NAME), os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    touch(tmp_path / "fine.txt")
    entries = run_scan([tmp_path])
    assert list(facts(entries)) == [str(tmp_path / "fine.txt")]
    (skip,) = [e for e in entries if isinstance(e, ScanSkip)]
    assert "not valid UTF-8" in skip.reason
    assert skip.path == str(tmp_path / bf.NON_UTF8_SHOWN)
    skip.path.encode("utf-8")  # storable and printable as is
    json.dumps(skip.path, ensure_ascii=False).encode("utf-8")


def test_files_inside_a_non_utf8_folder_are_skipped_not_crashed_on(tmp_path):
    folder = os.path.join(os.fsencode(tmp_path), b"d\xfcsseldorf")
    os.mkdir(folder)
    os.close(os.open(os.path.join(folder, b"map.png"), os.O_WRONLY | os.O_CREAT, 0o644))
    (skip,) = run_scan([tmp_path])
    assert skip == ScanSkip(str(tmp_path / "d\\xfcsseldorf" / "map.png"), "file name is not valid UTF-8")


def test_display_path_is_identity_for_good_names():
    assert display_path("/photos/caf\u00e9/\u732b.jpg") == "/photos/caf\u00e9/\u732b.jpg"


def test_long_file_names_work(tmp_path):
    name = "\u00e9" * 123 + ".jpg"  # 250 bytes in UTF-8, near the usual 255-byte limit
    assert len(name.encode()) == 250
    touch(tmp_path / name)
    touch(tmp_path / ("d" * 250) / ("t" * 246 + ".txt"))
    found = facts(run_scan([tmp_path]))
    assert set(found) == {str(tmp_path / name), str(tmp_path / ("d" * 250) / ("t" * 246 + ".txt"))}


def make_deep_tree(base: Path, total_bytes: int) -> list[str]:
    """Nest 200-byte folders until the path is over ``total_bytes`` long, working relative
    to open folder handles (an absolute path that long cannot be used). Puts a picture and
    a text with a 104-byte name at every level; returns the paths of all those files."""
    files: list[str] = []
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    here = str(base)
    try:
        level = 0
        while len(here.encode()) <= total_bytes:
            name = "%03d" % level + "d" * 197
            os.mkdir(name, dir_fd=fd)
            new = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd, here, level = new, here + "/" + name, level + 1
            for leaf in ("p.jpg", "n" * 100 + ".txt"):
                os.close(os.open(leaf, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
                files.append(here + "/" + leaf)
    finally:
        os.close(fd)
    return files


def test_paths_longer_than_the_limit_are_skipped_without_crashing(tmp_path):
    try:
        files = make_deep_tree(tmp_path, MAX_PATH_BYTES + 600)
    except OSError as exc:  # some file systems refuse deep trees; long names are covered above
        pytest.skip(f"cannot build a deep tree here: {exc}")
    try:
        entries = run_scan([tmp_path])
        found = facts(entries)
        reported = skips(entries)
        assert found and all(len(p.encode()) <= MAX_PATH_BYTES for p in found)
        reasons = " | ".join(reported.values())
        assert f"path longer than {MAX_PATH_BYTES} bytes" in reasons  # a file in a folder we can list
        assert "too long" in reasons  # a folder too deep to list at all
        for path in reported:
            path.encode("utf-8")  # storable
        # nothing silently dropped: each file is found, or it or a folder above it is reported
        for path in files:
            assert path in found or any(path.startswith(p.removesuffix("...")) for p in reported), path[-80:]
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)  # rmtree works by handles, so depth is fine


def test_a_single_file_root_works(tmp_path):
    path = touch(tmp_path / "one.png")
    touch(tmp_path / "other.png")
    assert list(facts(run_scan([path]))) == [str(path)]


def test_a_single_file_root_with_an_unknown_extension_yields_nothing(tmp_path):
    assert run_scan([touch(tmp_path / "doc.pdf")]) == []


def test_a_missing_root_is_a_skip(tmp_path):
    (skip,) = run_scan([tmp_path / "nope"])
    assert skip.path == str(tmp_path / "nope") and "cannot read" in skip.reason


def test_the_same_file_reachable_twice_is_reported_once(tmp_path):
    pic = touch(tmp_path / "sub" / "a.jpg")
    touch(tmp_path / "b.txt")
    (tmp_path / "alias").symlink_to(tmp_path / "sub", target_is_directory=True)
    entries = run_scan([tmp_path, tmp_path / "sub", pic, str(tmp_path) + "/"])
    paths = [e.path for e in entries if isinstance(e, FileFact)]
    assert sorted(paths) == [str(tmp_path / "b.txt"), str(pic)]  # under its real path, not the alias
    reported = skips(entries)
    assert str(tmp_path / "alias") in reported and str(tmp_path / "sub") not in reported


def test_links_to_one_file_report_it_once_under_the_first_path(tmp_path):
    real = touch(tmp_path / "2020" / "beach.jpg")
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "beach.jpg").symlink_to(real)
    os.link(real, tmp_path / "copy.jpg")
    assert list(facts(run_scan([tmp_path]))) == [str(real)]


def test_overlapping_roots_are_merged_without_reports(tmp_path):
    touch(tmp_path / "sub" / "a.jpg")
    touch(tmp_path / "b.txt")
    for roots in ([tmp_path, tmp_path / "sub"], [tmp_path / "sub", tmp_path], [tmp_path, tmp_path]):
        entries = run_scan(roots)
        assert all(isinstance(e, FileFact) for e in entries), entries
        assert len(entries) == 2


def test_a_file_root_then_its_folder_reports_it_once(tmp_path):
    pic = touch(tmp_path / "a.jpg")
    assert [e.path for e in run_scan([pic, tmp_path]) if isinstance(e, FileFact)] == [str(pic)]


def test_the_shared_bad_corpus_scans_to_its_expected_skips(tmp_path):
    expected = bf.build_bad_corpus(tmp_path)
    entries = run_scan([tmp_path])
    reported = {os.path.relpath(p, tmp_path): r for p, r in skips(entries).items()}
    scan_level = {"broken_link.jpg", "loop/again", bf.NON_UTF8_SHOWN, "fifo.png"}
    assert set(reported) == scan_level
    for name, reason in reported.items():
        assert expected[name] in reason, (name, reason)
    assert {os.path.relpath(p, tmp_path) for p in facts(entries)} == set(expected) - scan_level


_SCAN_AS_NOBODY = """
import json, os, sys
from indexer.scan import ScanSkip, scan
os.setgroups([]); os.setgid(65534); os.setuid(65534)
print(json.dumps([[type(e).__name__, e.path, getattr(e, "reason", "")] for e in scan([sys.argv[1]])]))
"""


def scan_without_permission(root: Path) -> list[list[str]]:
    if os.geteuid() != 0:
        return [[type(e).__name__, e.path, getattr(e, "reason", "")] for e in run_scan([root])]
    # root lists through chmod 000, so scan as nobody in a child
    proc = subprocess.run([sys.executable, "-c", _SCAN_AS_NOBODY, str(root)], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_an_unreadable_folder_is_reported_and_the_rest_still_scanned():
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="searchd-scan-perm-"))
    try:
        base.chmod(0o755)
        touch(base / "open" / "a.jpg").chmod(0o644)
        touch(base / "shut" / "b.jpg")
        (base / "open").chmod(0o755)
        (base / "shut").chmod(0o000)
        entries = scan_without_permission(base)
        assert ["FileFact", str(base / "open" / "a.jpg"), ""] in entries
        assert ["ScanSkip", str(base / "shut"), "cannot list folder: Permission denied"] in entries
        assert len(entries) == 2
    finally:
        (base / "shut").chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("path, kind", [("a.JPEG", "image"), ("b.tiff", "image"), ("c.MD", "text"),
                                        ("d.htm", "text"), ("e.docx", None), ("jpg", None), ("f.", None)])
def test_kind_of(path, kind):
    assert kind_of(path) == kind


def test_under_roots_respects_folder_boundaries(tmp_path):
    root = str(tmp_path / "photos")
    assert under_roots(root + "/a.jpg", [root]) and under_roots(root, [root + "/"])
    assert not under_roots(str(tmp_path / "photos-old" / "a.jpg"), [root])


def test_links_out_of_the_roots_are_reported_not_followed(tmp_path):
    outside = tmp_path / "outside"
    secret = touch(outside / "secret.txt", b"private")
    touch(outside / "more" / "photo.jpg")
    root = tmp_path / "notes"
    touch(root / "mine.md")
    (root / "secret.txt").symlink_to(secret)
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "tool.bin").symlink_to(secret)  # not indexable anyway: not reported
    entries = run_scan([root])
    assert list(facts(entries)) == [str(root / "mine.md")]
    assert skips(entries) == {str(root / "secret.txt"): OUTSIDE_ROOTS,
                              str(root / "elsewhere"): OUTSIDE_ROOTS}
    followed = list(facts(scan([root], follow_links=True)))
    assert str(root / "mine.md") in followed and str(root / "elsewhere" / "more" / "photo.jpg") in followed
    assert len([p for p in followed if p.endswith("secret.txt")]) == 1 and len(followed) == 3  # once


def test_links_between_roots_or_within_one_are_followed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    touch(b / "real.jpg")
    touch(a / "x.md")
    (a / "to-b").symlink_to(b, target_is_directory=True)
    (a / "y.md").symlink_to(a / "x.md")
    paths = list(facts(run_scan([a, b])))
    assert sorted(paths) == [str(a / "to-b" / "real.jpg"), str(a / "x.md")]  # each file once
    rooted_link = tmp_path / "link-to-b"
    rooted_link.symlink_to(b, target_is_directory=True)
    assert list(facts(run_scan([rooted_link]))) == [str(rooted_link / "real.jpg")]  # a root may be a link
