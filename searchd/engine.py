"""SearchEngine: catalog + FAISS indexes + encoders -> hits.

Readers never block the writer: the engine reads the catalog through SQLite's
WAL and the FAISS files the indexer publishes. Before each query it checks the
catalog's generation and, when a new one was published, loads the new indexes
and swaps them in; queries already running finish on the old ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
from PIL import Image

from indexer.catalog import STOP_WORDS, Catalog, ItemRecord, open_catalog
from indexer.datadir import DataDir
from indexer.encoders.clip import ClipEncoder
from indexer.encoders.sbert import SbertEncoder
from indexer.errors import BadRequestError, NotFoundError, NotIndexedError, SkipFile, UnsupportedMediaError
from indexer.extract import ExtractOptions, open_image
from indexer.vectors import IndexSet
from searchd import ranking
from searchd.snippets import make_snippet, query_terms

MODES = ("text-image", "text-text", "text-all", "image-image", "image-text", "image-all")
TEXT_MODES = MODES[:3]
IMAGE_MODES = MODES[3:]
MAX_K = 200
MAX_OFFSET = 10_000
MAX_QUERY_CHARS = 1000
RRF_K = 60
#: near-duplicates are looked for among this many image hits (a page never reaches further)
MAX_COLLAPSE = 400
#: passages that stand in for a query the CLIP model cannot read
PASSAGE_BRIDGE = 3


@dataclass
class Query:
    mode: str = "text-image"
    text: str | None = None
    image: Image.Image | None = None
    item_id: int | None = None      # search by an item already in the index
    k: int = 20
    offset: int = 0
    min_score: float | None = None
    kind: str | None = None
    path_prefix: str | None = None
    taken_after: str | None = None
    taken_before: str | None = None
    sort: str = "relevance"
    weak: bool = False              # also return hits below the relevance floor (marked weak)
    collapse: bool = True           # fold near-duplicate images into one hit with its copies
    fusion: str = "calibrated"      # how lists from different spaces merge: calibrated or rrf

    def filters(self) -> dict[str, str]:
        """The filters on documents that are set, as keyword arguments for the catalog."""
        return {name: value for name, value in (("kind", self.kind), ("path_prefix", self.path_prefix),
                                                ("taken_after", self.taken_after),
                                                ("taken_before", self.taken_before)) if value}

    def validate(self) -> None:
        if self.mode not in MODES:
            raise BadRequestError(f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if not 1 <= self.k <= MAX_K:
            raise BadRequestError(f"k must be between 1 and {MAX_K}")
        if not 0 <= self.offset <= MAX_OFFSET:
            raise BadRequestError(f"offset must be between 0 and {MAX_OFFSET}")
        if self.sort not in ("relevance", "date"):
            raise BadRequestError("sort must be relevance or date")
        if self.kind not in (None, "image", "text"):
            raise BadRequestError("kind must be image or text")
        if self.mode in TEXT_MODES and self.item_id is None:
            if self.text is None or not self.text.strip():
                raise BadRequestError("the query text is empty")
            if len(self.text) > MAX_QUERY_CHARS:
                raise BadRequestError(f"the query is longer than {MAX_QUERY_CHARS} characters")
        elif self.image is None and self.item_id is None:
            raise BadRequestError(f"mode {self.mode} needs an image (or an indexed item) to search by")


@dataclass
class Hit:
    id: int
    kind: str
    path: str
    score: float                    # calibrated relevance in [0, 1], the same scale for every kind
    snippet: str
    document_id: int
    cosine: float = 0.0             # the raw cosine in the hit's own space
    weak: bool = False              # below the relevance floor (only returned when asked for)
    record: ItemRecord | None = None
    copies: list[tuple[int, str]] = field(default_factory=list)  # near-duplicates folded into it

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "path": self.path, "score": round(float(self.score), 6),
                "cosine": round(float(self.cosine), 6), "weak": self.weak, "snippet": self.snippet,
                "copies": [{"id": i, "path": p} for i, p in self.copies]}


@dataclass
class SearchResult:
    query: str
    mode: str
    took_ms: float
    hits: list[Hit]
    next_offset: int | None
    timings: dict[str, float] = field(default_factory=dict)
    weak_hidden: int = 0            # hits below the relevance floor that were left out
    notice: str | None = None       # something the person should know about these results

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "mode": self.mode, "took_ms": round(self.took_ms, 2),
                "hits": [h.to_dict() for h in self.hits], "next_offset": self.next_offset,
                "weak_hidden": self.weak_hidden, "notice": self.notice}


class _LRU:
    def __init__(self, size: int):
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key, value) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class _Slot:
    __slots__ = ("text", "vector", "error", "done")

    def __init__(self, text: str):
        self.text, self.vector, self.error, self.done = text, None, None, False


class QueryBatcher:
    """Encodes concurrent queries together in one model call.

    A caller whose query is pending while no batch is running becomes the runner and
    encodes up to ``max_batch`` pending queries at once, handing each caller its row.
    Queries that arrive while the model is busy wait and go together in the next batch,
    so a lone query pays nothing extra and under load the model runs once per batch
    instead of once per query. ``window_s`` > 0 would also hold a batch open that long.
    Rows do not influence each other: results equal encoding one at a time."""

    def __init__(self, encode, max_batch: int = 32, window_s: float = 0.0):
        self.encode = encode
        self.max_batch = max_batch
        self.window_s = window_s
        self._cond = threading.Condition()
        self._pending: list[_Slot] = []
        self._busy = False

    def __call__(self, text: str) -> np.ndarray:
        slot = _Slot(text)
        with self._cond:
            self._pending.append(slot)
            while not slot.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                if self.window_s > 0:
                    self._cond.release()
                    try:
                        time.sleep(self.window_s)  # let concurrent queries join this batch
                    finally:
                        self._cond.acquire()
                batch = self._pending[:self.max_batch]
                del self._pending[:len(batch)]
                self._cond.release()
                try:
                    vectors = self.encode([s.text for s in batch])
                    for s, vector in zip(batch, vectors):
                        s.vector = vector
                except BaseException as exc:  # every waiter gets the error, none hangs
                    for s in batch:
                        s.error = exc
                finally:
                    self._cond.acquire()
                    for s in batch:
                        s.done = True
                    self._busy = False
                    self._cond.notify_all()
        if slot.error is not None:
            raise slot.error
        return slot.vector


def rrf(lists: list[list[int]]) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of ranked id lists -> (id, fused score) best first."""
    scores: dict[int, float] = {}
    for ranked in lists:
        for rank, item_id in enumerate(ranked):
            scores[item_id] = scores.get(item_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    return sorted(scores.items(), key=lambda kv: -kv[1])


class SearchEngine:
    """Answers queries over one data dir. Thread-safe; one per process."""

    def __init__(self, data_dir: DataDir, clip: ClipEncoder, text: SbertEncoder, *,
                 cache_size: int = 512, max_image_pixels: int = 178_956_970, mmap: bool = False):
        self.data_dir = data_dir
        self.clip = clip
        self.text = text
        self.max_image_pixels = max_image_pixels
        self.mmap = mmap
        self._catalog: Catalog | None = None
        self._indexes: IndexSet | None = None
        self._generation = -1
        self._swap_lock = threading.Lock()
        self._cache = _LRU(cache_size)
        self._models_checked = False
        self._samples = ranking.BackgroundSamples()
        self._phashes = ranking.PerceptualHashes(data_dir.thumb_path)
        self._batchers = {"clip": QueryBatcher(clip.encode_texts), "text": QueryBatcher(text.encode_queries)}
        # One query searches on one thread: OpenMP teams cost more than they save for a
        # single vector (measured: 1.5 ms vs 21 ms per flat query on a busy 2-core box);
        # concurrent requests run in parallel threads instead.
        faiss.omp_set_num_threads(1)

    # -- lifecycle -----------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            if not self.data_dir.exists():
                raise NotIndexedError(f"nothing is indexed in {self.data_dir.root} yet; "
                                      f"run `searchd index PATH` first")
            self._catalog = open_catalog(self.data_dir.catalog_path, create=False)
        return self._catalog

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    def refresh(self) -> IndexSet:
        """Swap to the newest published indexes when the generation moved."""
        catalog = self.catalog
        generation = catalog.generation
        if self._indexes is not None and generation == self._generation:
            return self._indexes
        with self._swap_lock:
            if self._indexes is None or generation != self._generation:
                manifest = IndexSet.read_manifest(self.data_dir.indexes_dir)
                if manifest is None and catalog.count_items():
                    indexes = IndexSet.rebuild(self.data_dir.indexes_dir, catalog)
                else:
                    indexes = IndexSet.load(self.data_dir.indexes_dir, mmap=self.mmap)
                self._indexes, self._generation = indexes, generation
        return self._indexes

    @property
    def generation(self) -> int:
        return self._generation

    def warm_up(self) -> None:
        """Load models and indexes now, so the first query is not the slow one."""
        self.clip.load()
        self.text.load()
        self.clip.encode_texts(["warm up"])
        self.clip.encode_pixels(np.zeros((1, self.clip.image_size, self.clip.image_size, 3), np.uint8))
        self.text.encode_queries(["warm up"])
        if self.data_dir.exists():
            self._check_models()
            self.refresh()

    def _check_models(self) -> None:
        if self._models_checked:
            return
        for encoder in (self.clip, self.text):
            self.catalog.check_model(encoder.space, encoder.identity, self.data_dir.root)
        self._models_checked = True

    # -- encoding (cached) ---------------------------------------------------------

    def encode_text(self, space: str, text: str) -> np.ndarray:
        key = (space, text)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._batchers[space](text)
            self._cache.put(key, cached)
        return cached

    def encode_image(self, image: Image.Image) -> np.ndarray:
        key = ("image", hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest(), image.size)
        cached = self._cache.get(key)
        if cached is None:
            cached = self.clip.encode_images([image])[0]
            self._cache.put(key, cached)
        return cached

    def load_upload(self, data: bytes) -> Image.Image:
        """Decode an uploaded image safely (same limits as indexing)."""
        if not data:
            raise UnsupportedMediaError("the upload is empty")
        options = ExtractOptions(max_pixels=self.max_image_pixels)
        try:
            image, _ = open_image(data, options, want=self.clip.image_size)
        except SkipFile as exc:
            raise UnsupportedMediaError(f"the upload is not a usable image: {exc.reason}") from None
        return image

    # -- searching -----------------------------------------------------------------

    def _dense(self, indexes: IndexSet, space: str, modality: str, vector: np.ndarray, n: int,
               q: Query) -> list[tuple[int, float]]:
        """The ``n`` nearest items of a space that pass the query's filters.

        Most filters keep a good share of a collection, so the nearest 4n are fetched and
        checked against the catalog; only when too few pass is every passing id listed
        for FAISS to search among (on 100k items a folder filter took 35 to 85 ms that way
        every time)."""
        index = indexes.get(space, modality)
        if index is None or index.ntotal == 0:
            return []
        filters = q.filters()
        if not filters:
            scores, ids = index.search(vector, n)
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0])]
        scores, ids = index.search(vector, 4 * n)
        passing = self.catalog.passing_filters(ids[0].tolist(), **filters)
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if int(i) in passing]
        if len(hits) >= n or len(ids[0]) >= index.ntotal:
            return hits[:n]
        allowed = self.catalog.filtered_item_ids(space, modality, **filters)
        scores, ids = index.search(vector, n, allowed=allowed)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0])]

    def search(self, q: Query) -> SearchResult:
        q.validate()
        started = time.perf_counter()
        timings: dict[str, float] = {}
        catalog = self.catalog
        indexes = self.refresh()
        # COUNT(*) grows with the catalog: ask SQLite only when the indexes are empty
        if not any(ix.ntotal for ix in indexes.indexes.values()) and catalog.count_items() == 0:
            raise NotIndexedError("nothing is indexed yet; run `searchd index PATH` first")
        self._check_models()
        want = q.offset + q.k
        n = min(max(want * 4, 50), 2000)
        image_wanted = q.kind in (None, "image")
        text_wanted = q.kind in (None, "text")

        t0 = time.perf_counter()
        query_vec = self._query_vectors(q)
        timings["encode_ms"] = (time.perf_counter() - t0) * 1000

        t1 = time.perf_counter()
        cosine: dict[int, float] = {}
        z: dict[int, float] = {}
        records: dict[int, ItemRecord] = {}  # filled as passages are calibrated, then for the rest
        image_ids: list[int] = []
        text_lists: list[list[int]] = []   # ranked lists of passages, fused by RRF when asked
        bm25: dict[int, float] = {}
        if q.mode in ("text-image", "text-all") and image_wanted and not self._clip_reads(q.text):
            image_ids = self._images_by_passages(indexes, q, query_vec["text"], n, cosine, z)
        elif q.mode in ("text-image", "text-all", "image-image", "image-all") and image_wanted:
            image_ids = self._scored(indexes, "clip", "image", query_vec["clip"], n, q, cosine, z)
        if q.mode in ("text-text", "text-all") and text_wanted:
            text_lists, bm25 = self._hybrid_text(indexes, query_vec["text"], n, q, cosine, z, records)
        if q.mode in ("image-text", "image-all") and text_wanted:
            text_lists = [self._scored(indexes, "clip", "text", query_vec["clip"], n, q, cosine, z, records)]
        timings["search_ms"] = (time.perf_counter() - t1) * 1000

        t2 = time.perf_counter()
        text_ids = list(dict.fromkeys(i for ranked in text_lists for i in ranked))
        # items deleted since publish drop out here
        records.update(catalog.items([i for i in image_ids + text_ids if i not in records]))
        if q.mode in ("text-text", "text-all") and q.text:
            self._add_keyword_evidence(q.text, [i for i in text_ids if i in records], records, bm25, z)
        order = self._fuse(q, image_ids, text_lists, records, z)
        if q.item_id is not None:  # "similar to this item" should not return the item itself
            source = catalog.item(q.item_id)
            order = [i for i in order if source is None or records[i].document_id != source.document_id]
        score = {i: ranking.relevance(z[i]) for i in order}
        passing = [i for i in order if q.min_score is None or score[i] >= q.min_score]
        strong = [i for i in passing if z[i] >= 0]
        weak = [i for i in passing if z[i] < 0]
        copies = self._collapse(strong + weak, records) if q.collapse else {}
        if copies:
            folded = {c for group in copies.values() for c in group}
            strong = [i for i in strong if i not in folded]
            weak = [i for i in weak if i not in folded]
        if q.sort == "date":  # newest first among the relevant; weaker ones stay behind them
            for group in (strong, weak):
                group.sort(key=lambda i: records[i].taken_at or _iso(records[i].mtime_ns), reverse=True)
        order = strong + weak if q.weak else strong
        weak_hidden = 0 if q.weak else len(weak)
        page = order[q.offset:q.offset + q.k]
        terms = query_terms(q.text) if q.text else []
        hits = []
        for item_id in page:
            rec = records[item_id]
            snippet = make_snippet(rec.text or "", terms) if rec.kind == "text" else ""
            hits.append(Hit(id=item_id, kind=rec.kind, path=rec.path, score=score[item_id],
                            cosine=cosine.get(item_id, 0.0), snippet=snippet, document_id=rec.document_id,
                            weak=z[item_id] < 0, record=rec,
                            copies=[(c, records[c].path) for c in copies.get(item_id, [])]))
        timings["fetch_ms"] = (time.perf_counter() - t2) * 1000
        next_offset = q.offset + q.k if len(order) > q.offset + q.k else None
        label = q.text if q.text is not None else (f"item:{q.item_id}" if q.item_id is not None else "image")
        return SearchResult(query=label, mode=q.mode, took_ms=(time.perf_counter() - started) * 1000,
                            hits=hits, next_offset=next_offset, timings=timings, weak_hidden=weak_hidden,
                            notice=self._notice(q))

    def _query_vectors(self, q: Query) -> dict[str, np.ndarray]:
        catalog = self.catalog
        spaces = {"text-image": ("clip",), "text-text": ("text",), "text-all": ("clip", "text")}.get(q.mode, ("clip",))
        if q.item_id is None and "clip" in spaces and q.mode in TEXT_MODES and not self._clip_reads(q.text):
            spaces = ("text",)  # images are found through the passages the text model finds
        query_vec: dict[str, np.ndarray] = {}
        if q.item_id is not None:  # "more like this": the item's own stored vectors, no model
            if catalog.item(q.item_id) is None:
                raise NotFoundError(f"no item {q.item_id}")
            for space in spaces:
                vector = catalog.item_vector(q.item_id, space)
                if vector is None:
                    raise BadRequestError(f"item {q.item_id} has no vector in the {space} space; "
                                          f"use an image-* mode")
                query_vec[space] = vector
        elif q.mode in TEXT_MODES:
            for space in spaces:
                query_vec[space] = self.encode_text(space, q.text)
        else:
            query_vec["clip"] = self.encode_image(q.image)
        return query_vec

    def _background(self, q: Query, space: str, modality: str, vector: np.ndarray) -> ranking.Background:
        query_modality = "image" if q.mode in IMAGE_MODES else "text"
        return self._samples.background(self.catalog, self._generation, space, modality, query_modality, vector)

    def _scored(self, indexes: IndexSet, space: str, modality: str, vector: np.ndarray, n: int, q: Query,
                cosine: dict[int, float], z: dict[int, float],
                records: dict[int, ItemRecord] | None = None) -> list[int]:
        """The nearest items of one index, best first, their cosines and z-scores recorded."""
        hits = self._dense(indexes, space, modality, vector, n, q)
        self._calibrate(self._background(q, space, modality, vector), hits, cosine, z, records)
        return [i for i, _ in hits]

    def _calibrate(self, background: ranking.Background, hits: list[tuple[int, float]],
                   cosine: dict[int, float], z: dict[int, float],
                   records: dict[int, ItemRecord] | None = None) -> None:
        """Record each hit's cosine and its margin above the floor. Passages are measured by
        their script, so their records are read here, into ``records`` for the caller."""
        if background.centers:
            records = {} if records is None else records
            records.update(self.catalog.items([i for i, _ in hits if i not in records]))
        for item_id, score in hits:
            cosine[item_id] = score
            rec = records.get(item_id) if background.centers else None
            z[item_id] = background.margin(score, ranking.script_of(rec.text or "") if rec else None)

    def _hybrid_text(self, indexes: IndexSet, vector: np.ndarray, n: int, q: Query, cosine: dict[int, float],
                     z: dict[int, float], records: dict[int, ItemRecord]) -> tuple[list[list[int]], dict[int, float]]:
        """Passages by meaning and by keywords: ([dense ids, keyword ids], BM25 scores), best first.

        Keyword-only passages get their cosine from their stored vector, so every passage
        is judged by meaning first; keyword evidence is added once the texts are at hand."""
        catalog = self.catalog
        dense = self._scored(indexes, "text", "text", vector, n, q, cosine, z, records)
        filters = q.filters()  # keywords are checked after the search, from a longer list
        keyword = catalog.bm25(q.text, 4 * n if filters else n) if q.text else []
        if filters:
            passing = catalog.passing_filters([i for i, _ in keyword], **filters)
            keyword = [(i, s) for i, s in keyword if i in passing][:n]
        missing = [i for i, _ in keyword if i not in cosine]
        if missing:
            vectors = catalog.get_vectors(missing)
            self._calibrate(self._background(q, "text", "text", vector),
                            [(i, float(np.dot(v, vector))) for i, v in vectors.items()], cosine, z, records)
        return [dense, [i for i, _ in keyword if i in z]], dict(keyword)

    @staticmethod
    def _add_keyword_evidence(query: str, ids: list[int], records: dict[int, ItemRecord],
                              bm25: dict[int, float], z: dict[int, float]) -> None:
        terms = [t for t in query_terms(query) if t not in STOP_WORDS]
        best = max((bm25.get(i, 0.0) for i in ids), default=0.0)
        for i in ids:
            rec = records[i]
            text_ = rec.text or ""
            title = " ".join(filter(None, (rec.title, re.sub(r"[-_.]+", " ", rec.path.rsplit("/", 1)[-1]))))
            z[i] += ranking.keyword_bonus(bm25.get(i, 0.0), best, ranking.term_coverage(terms, text_),
                                          ranking.has_phrase(query, text_), ranking.term_coverage(terms, title))

    def _fuse(self, q: Query, image_ids: list[int], text_lists: list[list[int]],
              records: dict[int, ItemRecord], z: dict[int, float]) -> list[int]:
        """One ranked list: by calibrated score, or (for comparison) by reciprocal rank."""
        image_ids = [i for i in image_ids if i in records]
        text_lists = [[i for i in ranked if i in records] for ranked in text_lists]
        if q.fusion == "rrf":
            texts = [i for i, _ in rrf(text_lists)] if len(text_lists) > 1 else (text_lists or [[]])[0]
            texts = self._best_per_document(texts, records)
            return [i for i, _ in rrf([image_ids, texts])] if image_ids and texts else image_ids or texts
        texts = sorted({i for ranked in text_lists for i in ranked}, key=lambda i: -z[i])
        texts = self._best_per_document(texts, records)
        return sorted(image_ids + texts, key=lambda i: -z[i])

    @staticmethod
    def _best_per_document(ids: list[int], records: dict[int, ItemRecord]) -> list[int]:
        seen: set[int] = set()
        out = []
        for i in ids:
            rec = records.get(i)
            if rec is None or rec.document_id in seen:
                continue
            seen.add(rec.document_id)
            out.append(i)
        return out

    def _collapse(self, order: list[int], records: dict[int, ItemRecord]) -> dict[int, list[int]]:
        """Near-duplicate images among the hits that can reach a page: {kept: [copies]}."""
        images = [i for i in order if records[i].kind == "image"][:MAX_COLLAPSE]
        if len(images) < 2:
            return {}
        vectors = self.catalog.get_vectors(images)
        groups = ranking.duplicate_groups(images, {i: records[i].content_hash for i in images}, vectors,
                                          self._phashes.get)
        return {k: v for k, v in groups.items() if v}

    def _clip_reads(self, text: str | None) -> bool:
        """Whether the CLIP model reads this query's language (unknown models: assumed to)."""
        if not text or not ranking.has_cjk(text):
            return True
        languages = self.clip.identity.languages
        return not languages or "zh" in languages or "multilingual" in languages

    def _notice(self, q: Query) -> str | None:
        """Say so when images are searched with words the CLIP model does not read."""
        if q.mode not in ("text-image", "text-all") or q.item_id is not None or q.kind == "text":
            return None
        if self._clip_reads(q.text):
            return None
        return ("The image model reads English only: images are found through the passages and "
                "file names that match this query.")

    def _images_by_passages(self, indexes: IndexSet, q: Query, text_vec: np.ndarray, n: int,
                            cosine: dict[int, float], z: dict[int, float]) -> list[int]:
        """Images for words the CLIP model cannot read (a Chinese query, an English-only CLIP).

        The text model reads the query; the best passages it finds above the floor stand in
        for it, each through its own CLIP text vector (stored at indexing), and an image
        counts as relevant as the weaker of the two links. Images whose file names hold
        the query's words count too."""
        passage_margin: dict[int, float] = {}
        unfiltered = dataclasses.replace(q, kind=None, path_prefix=None, taken_after=None, taken_before=None)
        passages = self._scored(indexes, "text", "text", text_vec, PASSAGE_BRIDGE * 4, unfiltered, {},
                                passage_margin)
        best: dict[int, tuple[float, float]] = {}  # image -> (margin, cosine)
        for pid in [p for p in passages if passage_margin[p] > 0][:PASSAGE_BRIDGE]:
            vector = self.catalog.item_vector(pid, "clip")
            if vector is None:
                continue
            background = self._samples.background(self.catalog, self._generation, "clip", "image", "text", vector)
            for item_id, score in self._dense(indexes, "clip", "image", vector, n, q):
                margin = min(passage_margin[pid], background.margin(score))
                if margin > best.get(item_id, (-np.inf, 0.0))[0]:
                    best[item_id] = (margin, score)
        words = [t for t in query_terms(q.text or "") if len(t) >= 2 and t not in STOP_WORDS]
        named = self.catalog.items_named("clip", "image", words, n)
        if named and q.filters():
            passing = self.catalog.passing_filters(list(named), **q.filters())
            named = {i: p for i, p in named.items() if i in passing}
        for item_id, path in named.items():
            margin = ranking.W_TITLE * 2 * ranking.term_coverage(words, path.rsplit("/", 1)[-1])
            if margin > best.get(item_id, (-np.inf, 0.0))[0]:
                best[item_id] = (margin, best.get(item_id, (0.0, 0.0))[1])
        for item_id, (margin, score) in best.items():
            z[item_id], cosine[item_id] = margin, score
        return sorted(best, key=lambda i: -best[i][0])[:n]

    # -- items and status ----------------------------------------------------------

    def item(self, item_id: int) -> ItemRecord:
        record = self.catalog.item(item_id)
        if record is None:
            raise NotFoundError(f"no item {item_id}")
        return record

    def status(self, skipped_files: int = 200) -> dict[str, Any]:
        """What is indexed: the one report behind `searchd status` and GET /api/status."""
        out: dict[str, Any] = {"data_dir": str(self.data_dir.root), "indexed": self.data_dir.exists(),
                               "models": {}, "documents": {"image": 0, "text": 0}, "items": 0,
                               "items_by_index": {}, "skipped": 0, "skipped_files": [], "generation": 0,
                               "last_run": None, "indexes": {}}
        if not out["indexed"]:
            return out
        catalog = self.catalog
        counts = catalog.counts()
        out.update(documents=counts["documents"], items=sum(counts["items"].values()),
                   items_by_index=counts["items"], skipped=counts["skipped"],
                   skipped_files=[{"path": p, "reason": r} for p, r in catalog.skipped(limit=skipped_files)],
                   generation=catalog.generation, last_run=catalog.last_run(),
                   models={space: identity.to_dict() if (identity := catalog.model_identity(space)) else None
                           for space in ("clip", "text")})
        out["indexes"] = self.refresh().describe() if out["items"] else {}
        return out


def _iso(mtime_ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(mtime_ns / 1e9))


def create_search_engine(settings) -> SearchEngine:
    """Wire a SearchEngine from Settings (models load lazily, on first use or warm_up)."""
    from indexer.encoders import load_encoders, preset_specs

    clip_spec, text_spec = preset_specs(settings.models, settings.clip_model, settings.text_model)
    clip, text = load_encoders(clip_spec, text_spec, device=settings.device, offline=settings.offline)
    return SearchEngine(DataDir(settings.data_dir), clip, text, cache_size=settings.query_cache_size,
                        max_image_pixels=settings.max_image_pixels, mmap=settings.mmap_indexes)
