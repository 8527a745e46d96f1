"""Walk roots and report file facts: path, size, mtime and kind.

Cheap by design: only ``stat`` is called, so unchanged files are never read.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass
from typing import Iterable, Iterator

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".rst", ".html", ".htm"})
#: longest path we store; longer ones are reported and skipped
MAX_PATH_BYTES = 4096


@dataclass(frozen=True)
class FileFact:
    path: str
    size: int
    mtime_ns: int
    kind: str  # "image" | "text"


@dataclass(frozen=True)
class ScanSkip:
    path: str
    reason: str


def kind_of(path: str) -> str | None:
    ext = os.path.splitext(path)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in TEXT_EXTENSIONS:
        return "text"
    return None


OUTSIDE_ROOTS = "symlink to a place outside the indexed folders (--follow-links follows it)"


def display_path(path: str) -> str:
    """A printable, storable form of a path that may hold undecodable bytes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_excluded(path: str, patterns: Iterable[str]) -> bool:
    name = os.path.basename(path)
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in patterns)


def scan(roots: Iterable[str | os.PathLike], exclude: Iterable[str] = (),
         follow_links: bool = False) -> Iterator[FileFact | ScanSkip]:
    """Yield a FileFact for each indexable file under ``roots`` and a ScanSkip for each
    one that cannot be indexed (unreadable, unnameable, a broken link...).

    A symlink (to a file or a folder) whose target lies outside every root is reported,
    not followed, unless ``follow_links``: what is indexed can be served, so a link must
    not carry the index out of the folders it was pointed at. Links within the roots are
    followed once: a loop back to a folder already visited is reported, not walked forever,
    and a file reached twice is indexed once.
    """
    roots = list(roots)
    exclude = tuple(exclude)
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    inside = None if follow_links else [os.path.realpath(os.fspath(r)) for r in roots]
    for root in roots:
        root = os.path.abspath(os.fspath(root))
        try:
            st = os.stat(root)
        except OSError as exc:
            yield ScanSkip(display_path(root), f"cannot read: {exc.strerror or exc}")
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, exclude, seen_dirs, seen_files, via_link=False, inside=inside)
        else:
            item = _fact(root, exclude, seen_files)
            if item is not None:
                yield item


def _walk(top: str, exclude: tuple[str, ...], seen_dirs: set, seen_files: set,
          via_link: bool, inside: list[str] | None) -> Iterator[FileFact | ScanSkip]:
    try:
        st = os.stat(top)
    except OSError as exc:
        yield ScanSkip(display_path(top), f"cannot read folder: {exc.strerror or exc}")
        return
    key = (st.st_dev, st.st_ino)
    if key in seen_dirs:
        if via_link:  # a real folder seen again only means overlapping roots: nothing to report
            yield ScanSkip(display_path(top), "symlink loop or folder already visited")
        return
    seen_dirs.add(key)
    try:
        # real entries before symlinks, so a link to a sibling folder is the one skipped
        # as already visited and its files keep their real paths
        entries = sorted(os.scandir(top), key=lambda e: (_is_link(e), e.name))
    except OSError as exc:
        yield ScanSkip(display_path(top), f"cannot list folder: {exc.strerror or exc}")
        return
    for entry in entries:
        path = entry.path
        if is_excluded(path, exclude):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError as exc:
            yield ScanSkip(display_path(path), f"cannot read: {exc.strerror or exc}")
            continue
        if inside is not None and _is_link(entry) and not under_roots(os.path.realpath(path), inside):
            if is_dir or kind_of(path) is not None:  # what would have been indexed
                yield ScanSkip(display_path(path), OUTSIDE_ROOTS)
            continue
        if is_dir:
            if entry.name.startswith(".") and entry.name in (".git", ".hg", ".svn"):
                continue
            yield from _walk(path, exclude, seen_dirs, seen_files, via_link=_is_link(entry), inside=inside)
        else:
            item = _fact(path, exclude, seen_files)
            if item is not None:
                yield item


def _is_link(entry: os.DirEntry) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _fact(path: str, exclude: tuple[str, ...], seen_files: set) -> FileFact | ScanSkip | None:
    kind = kind_of(path)
    if kind is None or is_excluded(path, exclude):
        return None
    if path in seen_files:
        return None
    seen_files.add(path)
    shown = display_path(path)
    if shown != path:
        return ScanSkip(shown, "file name is not valid UTF-8")
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        return ScanSkip(shown[:200] + "...", f"path longer than {MAX_PATH_BYTES} bytes")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ScanSkip(shown, "broken symlink or file vanished")
    except OSError as exc:
        return ScanSkip(shown, f"cannot read: {exc.strerror or exc}")
    if not stat.S_ISREG(st.st_mode):
        return ScanSkip(shown, "not a regular file")
    # a file symlink, a hard link or a file root inside a folder root reach one file twice
    key = (st.st_dev, st.st_ino)
    if key in seen_files:
        return None
    seen_files.add(key)
    return FileFact(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, kind=kind)


def under_roots(path: str, roots: Iterable[str]) -> bool:
    for root in roots:
        root = os.path.abspath(root)
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def resolve_roots(roots: Iterable[str | os.PathLike]) -> list[str]:
    return [os.path.abspath(os.fspath(r)) for r in roots]


__all__ = ["FileFact", "ScanSkip", "scan", "kind_of", "display_path", "under_roots",
           "resolve_roots", "IMAGE_EXTENSIONS", "TEXT_EXTENSIONS"]
