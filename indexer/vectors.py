"""FAISS indexes, one per (space, modality): derived caches of the catalog.

Each is an IndexIDMap2 whose ids are item ids, saved atomically (temp file,
fsync, rename). ``manifest.json`` records the catalog ``data_version`` the
files were written from; when it lags the catalog (a run died between its
commit and its publish), the indexes are rebuilt from the vectors in SQLite.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from indexer.catalog import KEYS, Catalog


def index_name(space: str, modality: str) -> str:
    return f"{space}-{modality}"


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class IndexPolicy:
    """Which FAISS index a space gets as it grows.

    Exact search (Flat) while small; from ``ivf_threshold`` vectors an inverted-file
    index with a trained quantizer (``IVF{nlist},{codec}``), which still supports adding
    and removing items; retrained when the collection grows ``retrain_growth`` times.
    ``kind`` forces one: ``auto`` | ``flat`` | ``ivf``.
    """

    kind: str = "auto"
    ivf_threshold: int = 30_000
    codec: str = "SQ8"              # Flat | SQ8 | PQ{m}
    target_recall: float = 0.95
    retrain_growth: float = 4.0

    def wants_ivf(self, n: int) -> bool:
        return self.kind == "ivf" or (self.kind == "auto" and n >= self.ivf_threshold)


FLAT_INFO = {"type": "Flat", "nprobe": 0, "expected_recall": 1.0, "trained_n": 0}


class VectorIndex:
    """One FAISS index of unit vectors searched by inner product, ids = item ids.

    Flat indexes are IndexIDMap2 over IndexFlatIP; IVF indexes carry ids themselves.
    ``info`` says which, with the nprobe that reached the target recall when trained.
    """

    def __init__(self, dim: int, index: faiss.Index | None = None, info: dict | None = None):
        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.info = dict(info or FLAT_INFO)
        self._lock = threading.RLock()

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def is_ivf(self) -> bool:
        return self.info.get("type", "Flat") != "Flat"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        with self._lock:
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                    np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids) -> int:
        if len(ids) == 0:
            return 0
        with self._lock:
            return int(self.index.remove_ids(np.asarray(ids, dtype=np.int64)))

    def ids(self) -> np.ndarray:
        with self._lock:
            if self.ntotal == 0:
                return np.zeros(0, dtype=np.int64)
            if not self.is_ivf:
                return faiss.vector_to_array(self.index.id_map).astype(np.int64)
            ivf = faiss.extract_index_ivf(self.index)
            lists = ivf.invlists
            parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                     for i in range(ivf.nlist) if lists.list_size(i)]
            return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """-> (scores, ids), each (nq, k'), cut at the first -1 (fewer results than k).

        No lock: searching is read-only and FAISS releases the GIL, so concurrent
        queries run in parallel; only the indexer mutates, never while searching.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        empty = np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self.ntotal == 0 or (allowed is not None and len(allowed) == 0):
            return empty
        k = max(1, min(k, self.ntotal))
        selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)) if allowed is not None else None
        if self.is_ivf:
            nprobe = int(self.info.get("nprobe") or 1)
            if selector is not None:
                # A filter that keeps a share f of the vectors keeps f of the candidates in
                # the probed lists: probing nprobe / f lists keeps the recall it was tuned for.
                nlist = faiss.extract_index_ivf(self.index).nlist
                nprobe = min(nlist, math.ceil(nprobe * self.ntotal / len(allowed)))
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            if selector is not None:
                params.sel = selector
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        scores, ids = self.index.search(queries, k, params=params) if params else self.index.search(queries, k)
        valid = int((ids[0] >= 0).sum()) if len(ids) else 0
        return scores[:, :valid], ids[:, :valid]

    def to_bytes(self) -> bytes:
        with self._lock:
            return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, info: dict | None = None) -> "VectorIndex":
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls(index.d, index, info)

    @classmethod
    def read(cls, path: Path, info: dict | None = None, mmap: bool = False) -> "VectorIndex":
        """Read from disk; ``mmap`` maps it read-only so worker processes share the pages.
        A mapped index must never be changed (FAISS would abort the process)."""
        if mmap:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        else:
            index = faiss.read_index(str(path))
        return cls(index.d, index, info)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, policy: IndexPolicy, seed: int = 0) -> "VectorIndex":
        """The index the policy asks for at this size, filled with ``vectors``."""
        dim = vectors.shape[1]
        n = len(ids)
        if not policy.wants_ivf(n) or n < 1000:
            index = cls(dim)
            index.add(ids, vectors)
            return index
        nlist = int(min(max(16, 4 * np.sqrt(n)), n // 39))
        factory = f"IVF{nlist},{policy.codec}"
        ivf = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = vectors if n <= 60 * nlist else vectors[rng.choice(n, size=60 * nlist, replace=False)]
        ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
        ivf.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
        nprobe, recall = tune_nprobe(ivf, np.asarray(ids, dtype=np.int64), vectors, policy.target_recall, rng)
        return cls(dim, ivf, {"type": factory, "nprobe": nprobe, "expected_recall": round(recall, 4),
                              "trained_n": n})


def tune_nprobe(ivf: faiss.Index, ids: np.ndarray, vectors: np.ndarray, target: float, rng: np.random.Generator,
                queries: int = 200, k: int = 10) -> tuple[int, float]:
    """The smallest nprobe whose recall@k against exact search reaches ``target``."""
    n = len(vectors)
    picks = rng.choice(n, size=min(queries, n), replace=False)
    q = vectors[picks] + rng.normal(0, 0.02, size=(len(picks), vectors.shape[1])).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, truth_rows = exact.search(q, k)
    truth = ids[truth_rows]  # exact search returns rows; the IVF returns item ids
    nlist = faiss.extract_index_ivf(ivf).nlist
    best = (nlist, 0.0)
    nprobe = 1
    while nprobe <= nlist:
        _, got = ivf.search(q, k, params=faiss.SearchParametersIVF(nprobe=nprobe))
        recall = float(np.mean([len(set(g) & set(t)) / k for g, t in zip(got, truth)]))
        if recall >= target:
            return nprobe, recall
        best = (nprobe, recall)
        nprobe *= 2
    return min(best[0], nlist), best[1]


@dataclass
class Manifest:
    data_version: int
    generation: int
    dims: dict[str, int]
    info: dict[str, dict]


class IndexSet:
    """The FAISS indexes of a data dir, kept in step with its catalog."""

    def __init__(self, folder: Path, indexes: dict[tuple[str, str], VectorIndex], data_version: int,
                 policy: IndexPolicy = IndexPolicy()):
        self.folder = Path(folder)
        self.indexes = indexes
        self.data_version = data_version
        self.policy = policy
        #: rebuilt from the catalog because the files on disk were stale, missing or unreadable
        self.rebuilt = False

    # -- loading -------------------------------------------------------------------

    @staticmethod
    def read_manifest(folder: Path) -> Manifest | None:
        try:
            raw = json.loads((Path(folder) / "manifest.json").read_text())
            return Manifest(int(raw["data_version"]), int(raw.get("generation", 0)), dict(raw.get("dims", {})),
                            dict(raw.get("info", {})))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    @classmethod
    def load(cls, folder: Path, catalog: Catalog | None = None, *, policy: IndexPolicy = IndexPolicy(),
             mmap: bool = False) -> "IndexSet":
        """Read the saved indexes. With a catalog, an index that is missing, unreadable or
        older than the catalog is rebuilt from the vectors in SQLite (no model needed).
        ``mmap`` maps the files read-only (for servers; such indexes are never changed)."""
        folder = Path(folder)
        manifest = cls.read_manifest(folder)
        indexes: dict[tuple[str, str], VectorIndex] = {}
        for space, modality in KEYS:
            name = index_name(space, modality)
            path = folder / f"{name}.faiss"
            if path.exists():
                info = manifest.info.get(name) if manifest else None
                try:
                    indexes[(space, modality)] = VectorIndex.read(path, info, mmap=mmap)
                except RuntimeError:
                    pass  # unreadable: rebuilt below when a catalog is at hand
        version = manifest.data_version if manifest else -1
        loaded = cls(folder, indexes, version, policy)
        if catalog is not None and (manifest is None or version != catalog.data_version
                                    or any(k not in indexes and catalog.count_items(*k) for k in KEYS)):
            loaded = cls.rebuild(folder, catalog, policy=policy)
            loaded.rebuilt = True
        return loaded

    @classmethod
    def rebuild(cls, folder: Path, catalog: Catalog, *, policy: IndexPolicy = IndexPolicy(),
                keys: tuple = KEYS, into: "IndexSet | None" = None) -> "IndexSet":
        """Recreate indexes from the catalog's stored vectors, as the policy wants them."""
        target = into or cls(folder, {}, catalog.data_version, policy)
        for key in keys:
            chunks = list(catalog.iter_vectors(*key))
            if not chunks:
                target.indexes.pop(key, None)
                continue
            ids = np.concatenate([c[0] for c in chunks])
            vectors = np.concatenate([c[1] for c in chunks])
            del chunks
            target.indexes[key] = VectorIndex.build(ids, vectors, policy)
        target.data_version = catalog.data_version
        return target

    def maybe_retrain(self, catalog: Catalog) -> list[str]:
        """Move a grown Flat index to IVF, or retrain an IVF index that outgrew its
        training; returns the names of the indexes rebuilt."""
        changed = []
        for key, index in list(self.indexes.items()):
            n = index.ntotal
            if index.is_ivf:
                stale = n >= self.policy.retrain_growth * max(1, index.info.get("trained_n", n)) \
                    or not self.policy.wants_ivf(n)
            else:
                stale = self.policy.wants_ivf(n) and n >= 1000
            if stale:
                self.rebuild(self.folder, catalog, policy=self.policy, keys=(key,), into=self)
                changed.append(index_name(*key))
        return changed

    # -- changes -------------------------------------------------------------------

    def apply(self, added: dict, removed: dict) -> None:
        for key, ids in removed.items():
            if key in self.indexes:
                self.indexes[key].remove(ids)
        for key, (ids, vectors) in added.items():
            if key not in self.indexes:
                self.indexes[key] = VectorIndex(vectors.shape[1])
            self.indexes[key].add(ids, vectors)

    def drop(self, space: str) -> None:
        for key in list(self.indexes):
            if key[0] == space:
                del self.indexes[key]

    def save(self, data_version: int, generation: int) -> None:
        """Write every index atomically, then the manifest that vouches for them."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for key in KEYS:
            path = self.folder / f"{index_name(*key)}.faiss"
            if key in self.indexes:
                atomic_write(path, self.indexes[key].to_bytes())
            elif path.exists():
                path.unlink()
        manifest = {"data_version": data_version, "generation": generation,
                    "dims": {index_name(*k): v.dim for k, v in self.indexes.items()},
                    "info": {index_name(*k): {**v.info, "vectors": v.ntotal} for k, v in self.indexes.items()}}
        atomic_write(self.folder / "manifest.json", json.dumps(manifest).encode())
        self.data_version = data_version

    def clean_temp_files(self) -> None:
        for tmp in self.folder.glob(".*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass

    def describe(self) -> dict[str, dict]:
        """Per index: type, vectors, dim, nprobe and the recall@10 measured when trained."""
        return {index_name(*k): {"type": v.info.get("type", "Flat") if v.is_ivf else "Flat (exact)",
                                 "vectors": v.ntotal, "dim": v.dim, "nprobe": v.info.get("nprobe", 0),
                                 "expected_recall": v.info.get("expected_recall", 1.0)}
                for k, v in self.indexes.items()}

    def get(self, space: str, modality: str) -> VectorIndex | None:
        return self.indexes.get((space, modality))

    # -- checking ------------------------------------------------------------------

    def disagreements(self, catalog: Catalog) -> list[str]:
        """Every way these indexes differ from the catalog; empty when they agree."""
        problems = []
        manifest = self.read_manifest(self.folder)
        if manifest is None:
            if catalog.count_items():
                problems.append("indexes/manifest.json is missing or unreadable")
        elif manifest.data_version != catalog.data_version:
            problems.append(f"indexes were published at data version {manifest.data_version}, "
                            f"the catalog is at {catalog.data_version}")
        for key in KEYS:
            name = index_name(*key)
            expected = catalog.item_ids(*key)
            index = self.indexes.get(key)
            have = index.ids() if index is not None else np.zeros(0, dtype=np.int64)
            if index is None and len(expected):
                problems.append(f"{name}: index file missing, catalog has {len(expected)} items")
                continue
            missing = np.setdiff1d(expected, have)
            extra = np.setdiff1d(have, expected)
            duplicates = len(have) - len(np.unique(have))
            if len(missing):
                problems.append(f"{name}: {len(missing)} catalog items missing from the index")
            if len(extra):
                problems.append(f"{name}: {len(extra)} index entries not in the catalog")
            if duplicates:
                problems.append(f"{name}: {duplicates} duplicate ids")
        return problems
