"""index_paths: scan -> diff against the catalog -> decode in parallel -> encode in
batches -> commit -> publish.

Decoding runs in a pool of processes (one per core by default) that works ahead
of the encoder, so the two overlap. With ``decode_device`` set (CUDA), JPEGs that
arrive while every worker is busy are only read by the workers and decoded in batches
on the device instead (indexer.device_decode), so the GPU adds its decoding to the
cores'. Thumbnails are written by a few threads while the batch is encoded. Each
batch is committed in one transaction, then mirrored into the in-memory FAISS
indexes; publishing saves them atomically and bumps the catalog's generation, which
running servers watch.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

import numpy as np

from indexer.catalog import Catalog, DocumentWrite, ItemWrite
from indexer.datadir import DataDir
from indexer.device_decode import device_decoder
from indexer.errors import SkipFile
from indexer.extract import ExtractOptions, PreparedImage, PreparedText, prepare, webp_bytes
from indexer.scan import FileFact, ScanSkip, resolve_roots, scan
from indexer.vectors import IndexPolicy, IndexSet, atomic_write


class ImageEncoder(Protocol):
    image_size: int

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray: ...
    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


class TextEncoder(Protocol):
    def encode_passages(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class IndexOptions:
    batch_size: int = 32
    workers: int = 0
    exclude: tuple[str, ...] = ()
    #: follow symlinks whose targets lie outside every root (their files become servable)
    follow_links: bool = False
    thumb_size: int = 256
    max_image_pixels: int = 178_956_970
    publish_every_s: float = 30.0
    reembed: bool = False
    policy: IndexPolicy = IndexPolicy()
    #: a torch device that decodes JPEGs beside the worker processes (None: workers only)
    decode_device: str | None = None
    #: which JPEGs go to that device: "busy" (those that find every worker busy) or "all"
    device_share: str = "busy"


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    reused: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    images: int = 0
    passages: int = 0
    device_decoded: int = 0  # images decoded on the device (GPU) rather than by the workers
    seconds: float = 0.0
    generation: int = 0

    def summary(self) -> dict:
        return {"added": len(self.added), "updated": len(self.updated), "removed": len(self.removed),
                "unchanged": self.unchanged, "skipped": len(self.skipped), "reused": self.reused,
                "images": self.images, "passages": self.passages, "device_decoded": self.device_decoded,
                "seconds": round(self.seconds, 3), "generation": self.generation}


#: progress(done, total, path) after each file is settled
ProgressFn = Callable[[int, int, str], None]


def _prepare_safely(path: str, kind: str, options: ExtractOptions, defer_jpeg: bool = False):
    """Runs in a worker: a Prepared* or a skip reason, never an exception."""
    try:
        return prepare(path, kind, options, defer_jpeg)
    except SkipFile as exc:
        return exc.reason
    except Exception as exc:  # a decoder bug must not end the run
        return f"could not read: {type(exc).__name__}: {exc}"


class _Decoder:
    """A process pool that works ahead of the encoder, in submission order.

    ``defer`` says which images the workers leave to a device decoder: "off" (none),
    "busy" (those submitted while the workers already have ``backlog`` decodes queued:
    the cores keep all they can do, the device takes the rest) or "all". The backlog
    (at least two per worker) should cover the time the main process spends on a batch,
    so that the workers never run dry while it decodes and encodes on the device.
    """

    def __init__(self, workers: int, options: ExtractOptions, window: int, defer: str = "off",
                 backlog: int = 0):
        self.workers = max(1, workers)
        self.options = options
        self.window = window
        self.defer = defer
        self.backlog = max(2 * self.workers, backlog)
        self._pool: ProcessPoolExecutor | None = None

    def _should_defer(self, fact: FileFact, busy: int) -> bool:
        """``busy``: decodes the workers have queued or running."""
        if fact.kind != "image" or self.defer == "off":
            return False
        return self.defer == "all" or busy >= self.backlog

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: workers import only PIL and numpy, never the parent's torch threads
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def run(self, facts: list[FileFact]):
        """Yield (fact, Prepared | reason) in the order of ``facts``."""
        if not facts:
            return
        self._pool = self._new_pool()
        pending: collections.deque[tuple[FileFact, Future]] = collections.deque()
        queue = iter(facts)
        busy = [0]  # decodes (not deferred) queued or running; done callbacks count down
        lock = threading.Lock()

        def one_done(_):
            with lock:
                busy[0] -= 1

        try:
            def fill():
                while len(pending) < self.window:
                    fact = next(queue, None)
                    if fact is None:
                        return
                    defer = self._should_defer(fact, busy[0])
                    fut = self._pool.submit(_prepare_safely, fact.path, fact.kind, self.options, defer)
                    if not defer:
                        with lock:
                            busy[0] += 1
                        fut.add_done_callback(one_done)
                    pending.append((fact, fut))

            fill()
            while pending:
                fact, fut = pending.popleft()
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    # A decoder died (out of memory, a crashing codec): the file at the
                    # head is blamed, the pool is replaced and the rest go round again.
                    result = "the decoder process crashed on this file"
                    retry = [f for f, _ in pending]
                    pending.clear()
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._new_pool()
                    queue = iter(retry + list(queue))
                yield fact, result
                fill()
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class Indexer:
    """Indexes folders into one data dir. The caller holds the writer lock."""

    def __init__(self, data_dir: DataDir, catalog: Catalog, clip: ImageEncoder, text: TextEncoder,
                 options: IndexOptions = IndexOptions()):
        self.data_dir = data_dir
        self.catalog = catalog
        self.clip = clip
        self.text = text
        self.options = options
        self.indexes: IndexSet | None = None
        self._last_publish = time.monotonic()
        self._dirty = False
        self._device = None  # the device JPEG decoder of the current run, if any
        self._thumbs: ThreadPoolExecutor | None = None

    # -- the run -------------------------------------------------------------------

    def _open_indexes(self) -> IndexSet:
        if self.indexes is None:
            self.indexes = IndexSet.load(self.data_dir.indexes_dir, self.catalog, policy=self.options.policy)
            self.indexes.clean_temp_files()
            if self.indexes.rebuilt:
                self._dirty = True  # rebuilt from SQLite: publish it
        return self.indexes

    def check_models(self) -> None:
        for encoder in (self.clip, self.text):
            self.catalog.check_model(encoder.space, encoder.identity, self.data_dir.root)

    def run(self, roots: Iterable[str], progress: ProgressFn | None = None) -> IndexReport:
        started = time.monotonic()
        report = IndexReport()
        roots = resolve_roots(roots)
        indexes = self._open_indexes()
        known = self.catalog.documents_under(roots)
        known_skips = self.catalog.skipped_under(roots)

        work: list[FileFact] = []
        seen: set[str] = set()
        scan_skips: list[tuple[str, str, int, int]] = []
        for entry in scan(roots, self.options.exclude, follow_links=self.options.follow_links):
            if isinstance(entry, ScanSkip):
                report.skipped.append((entry.path, entry.reason))
                scan_skips.append((entry.path, entry.reason, -1, -1))
                continue
            seen.add(entry.path)
            old = known.get(entry.path)
            if old is not None and old[1] == entry.size and old[2] == entry.mtime_ns and not self.options.reembed:
                report.unchanged += 1
                continue
            old_skip = known_skips.get(entry.path)
            if old is None and old_skip and old_skip[0] == entry.size and old_skip[1] == entry.mtime_ns:
                report.skipped.append((entry.path, old_skip[2]))  # same bytes, same verdict
                continue
            work.append(entry)

        gone = [p for p in known if p not in seen]
        scan_skipped = {s[0] for s in scan_skips}
        vanished_skips = [p for p in known_skips if p not in seen and p not in scan_skipped]

        if work:
            self.check_models()
        total = len(work)
        done = 0
        options = ExtractOptions(image_size=getattr(self.clip, "image_size", 224) if work else 224,
                                 thumb_size=self.options.thumb_size,
                                 max_pixels=self.options.max_image_pixels)
        workers = min(self.options.workers or (os.cpu_count() or 1), max(1, total))
        self._device = device_decoder(self.options.decode_device, options) if work else None
        decoder = _Decoder(workers, options, window=max(4 * workers, 2 * self.options.batch_size),
                           defer=self.options.device_share if self._device else "off",
                           backlog=self.options.batch_size)
        self._thumbs = ThreadPoolExecutor(max(2, min(8, workers)), thread_name_prefix="thumbnails")
        batch: list[tuple[FileFact, PreparedImage | PreparedText]] = []
        batch_units = 0
        try:
            for fact, result in decoder.run(work):
                done += 1
                if isinstance(result, str):
                    report.skipped.append((fact.path, result))
                    self._commit([], [(fact.path, result, fact.size, fact.mtime_ns)], known, report)
                else:
                    batch.append((fact, result))
                    batch_units += 1 if isinstance(result, PreparedImage) else len(result.passages)
                    if batch_units >= self.options.batch_size:
                        self._flush(batch, known, report)
                        batch, batch_units = [], 0
                if progress:
                    progress(done, total, fact.path)
            if batch:
                self._flush(batch, known, report)
                batch = []
            # Removals last, so a moved file could still reuse the vectors of its old path.
            if gone or scan_skips:
                added, removed = self.catalog.write_batch([], remove_paths=gone, skips=scan_skips)
                indexes.apply(added, removed)
                self._dirty = True
                report.removed.extend(gone)
            self.catalog.forget_skips(vanished_skips)
        finally:
            self._thumbs.shutdown(wait=True)
            if self._dirty:
                report.generation = self.publish()
            else:
                report.generation = self.catalog.generation
            report.seconds = time.monotonic() - started
            self.catalog.set_meta("last_run", json.dumps({
                "finished_at": time.time(), "roots": roots, **report.summary(),
                "complete": done == total and not batch}, ensure_ascii=False))
        return report

    # -- batches -------------------------------------------------------------------

    def _decode_deferred(self, batch, report: IndexReport) -> tuple[list, list]:
        """Decode on the device the JPEGs the workers left to it -> (batch, skips)."""
        deferred = [i for i, (_, p) in enumerate(batch) if isinstance(p, PreparedImage) and p.encoded is not None]
        if not deferred:
            return batch, []
        decoded = dict(zip(deferred, self._device.decode([batch[i][1] for i in deferred])))
        report.device_decoded += sum(1 for r in decoded.values() if isinstance(r, PreparedImage)
                                     and r.thumbnail_pixels is not None)
        kept, skips = [], []
        for i, (fact, prepared) in enumerate(batch):
            result = decoded.get(i, prepared)
            if isinstance(result, str):
                skips.append((fact, result))
            else:
                kept.append((fact, result))
        return kept, skips

    def _flush(self, batch, known, report: IndexReport) -> None:
        batch, skips = self._decode_deferred(batch, report)
        for fact, reason in skips:
            report.skipped.append((fact.path, reason))
        docs: list[DocumentWrite] = []
        to_encode_images: list[tuple[int, PreparedImage]] = []
        to_encode_texts: list[tuple[int, PreparedText]] = []
        thumbnails: list[Future] = []
        reusable: dict[str, dict] = {}
        if not self.options.reembed:
            for kind in {fact.kind for fact, _ in batch}:
                reusable[kind] = self.catalog.reusable_items(
                    [p.content_hash for f, p in batch if f.kind == kind], kind)
        for fact, prepared in batch:
            doc = DocumentWrite(path=fact.path, kind=fact.kind, size=fact.size, mtime_ns=fact.mtime_ns,
                                content_hash=prepared.content_hash, metadata=prepared.metadata, items=[])
            reused = reusable.get(fact.kind, {}).get(prepared.content_hash)
            if reused is not None:
                doc.items = reused
                report.reused += 1
            elif isinstance(prepared, PreparedImage):
                to_encode_images.append((len(docs), prepared))
            else:
                to_encode_texts.append((len(docs), prepared))
            docs.append(doc)
            if isinstance(prepared, PreparedImage):
                thumbnails.append(self._thumbs.submit(self._write_thumbnail, prepared))

        if to_encode_images:
            vectors = self.clip.encode_pixels(np.stack([p.pixels for _, p in to_encode_images]))
            for (slot, _), vector in zip(to_encode_images, vectors):
                docs[slot].items = [ItemWrite("clip", "image", 0, None, vector)]
            report.images += len(to_encode_images)
        if to_encode_texts:
            passages = [text for _, p in to_encode_texts for text in p.passages]
            clip_vectors = self.clip.encode_texts(passages)
            # passage form: e5-style models embed what is indexed with their passage prefix
            text_vectors = self.text.encode_passages(passages)
            row = 0
            for slot, prepared in to_encode_texts:
                items = []
                for ordinal, passage in enumerate(prepared.passages):
                    items.append(ItemWrite("clip", "text", ordinal, passage, clip_vectors[row]))
                    items.append(ItemWrite("text", "text", ordinal, passage, text_vectors[row]))
                    row += 1
                docs[slot].items = items
            report.passages += len(passages)
        for fut in thumbnails:  # written (while the batch was encoded) before it is committed
            fut.result()
        self._commit(docs, [(f.path, reason, f.size, f.mtime_ns) for f, reason in skips], known, report)

    def _write_thumbnail(self, prepared: PreparedImage) -> None:
        """Runs in a thumbnail thread (Pillow's WebP encoder and fsync release the GIL)."""
        path = self.data_dir.thumb_path(prepared.content_hash)
        if not path.exists():
            data = prepared.thumbnail or webp_bytes(prepared.thumbnail_pixels)
            atomic_write(path, data)

    def _commit(self, docs: list[DocumentWrite], skips, known, report: IndexReport) -> None:
        added, removed = self.catalog.write_batch(docs, skips=skips)
        self._open_indexes().apply(added, removed)
        self._dirty = True
        for doc in docs:
            (report.updated if doc.path in known else report.added).append(doc.path)
        if time.monotonic() - self._last_publish >= self.options.publish_every_s:
            self.publish()

    def publish(self) -> int:
        """Save the indexes atomically, then bump the generation that servers watch."""
        indexes = self._open_indexes()
        indexes.maybe_retrain(self.catalog)
        self.catalog.refresh_statistics()
        generation = self.catalog.generation + 1
        indexes.save(self.catalog.data_version, generation)
        generation = self.catalog.bump_generation()
        self._last_publish = time.monotonic()
        self._dirty = False
        return generation

    # -- other writes --------------------------------------------------------------

    def remove(self, paths: Iterable[str]) -> list[str]:
        """Remove documents at or under ``paths`` from the index."""
        roots = resolve_roots(paths)
        doomed = sorted(self.catalog.documents_under(roots))
        skips = sorted(self.catalog.skipped_under(roots))
        if doomed:
            added, removed = self.catalog.write_batch([], remove_paths=doomed)
            self._open_indexes().apply(added, removed)
            self._dirty = True
        self.catalog.forget_skips(skips)
        if self._dirty:
            self.publish()
        return doomed

    def forget_mismatched_spaces(self) -> list[str]:
        """For --reembed: drop spaces whose stored model differs from the configured one."""
        dropped = []
        for encoder in (self.clip, self.text):
            stored = self.catalog.model_identity(encoder.space)
            if stored is not None and not stored.same_model(encoder.identity):
                self.catalog.forget_space(encoder.space)
                self._open_indexes().drop(encoder.space)
                self._dirty = True
                dropped.append(encoder.space)
        return dropped


__all__ = ["Indexer", "IndexOptions", "IndexReport"]
