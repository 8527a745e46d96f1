"""FAISS indexes, one per (space, modality): derived caches of the catalog.

Each is an IndexIDMap2 whose ids are item ids, saved atomically (temp file,
fsync, rename). ``manifest.json`` records the catalog ``data_version`` the
files were written from; when it lags the catalog (a run died between its
commit and its publish), the indexes are rebuilt from the vectors in SQLite.
"""

from __future__ import annotations

import json
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


class VectorIndex:
    """One FAISS index of unit vectors searched by inner product."""

    def __init__(self, dim: int, index: faiss.Index | None = None):
        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._lock = threading.RLock()

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

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
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """-> (scores, ids), each (nq, k'), cut at the first -1 (fewer results than k)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        k = max(1, min(k, self.ntotal))
        if self.ntotal == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        params = None
        if allowed is not None:
            if len(allowed) == 0:
                return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        with self._lock:
            scores, ids = self.index.search(queries, k, params=params) if params else self.index.search(queries, k)
        valid = (ids[0] >= 0).sum() if len(ids) else 0
        return scores[:, :valid], ids[:, :valid]

    def to_bytes(self) -> bytes:
        with self._lock:
            return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "VectorIndex":
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls(index.d, index)


@dataclass
class Manifest:
    data_version: int
    generation: int
    dims: dict[str, int]


class IndexSet:
    """The FAISS indexes of a data dir, kept in step with its catalog."""

    def __init__(self, folder: Path, indexes: dict[tuple[str, str], VectorIndex], data_version: int):
        self.folder = Path(folder)
        self.indexes = indexes
        self.data_version = data_version
        #: rebuilt from the catalog because the files on disk were stale, missing or unreadable
        self.rebuilt = False

    # -- loading -------------------------------------------------------------------

    @staticmethod
    def read_manifest(folder: Path) -> Manifest | None:
        try:
            raw = json.loads((Path(folder) / "manifest.json").read_text())
            return Manifest(int(raw["data_version"]), int(raw.get("generation", 0)), dict(raw.get("dims", {})))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    @classmethod
    def load(cls, folder: Path, catalog: Catalog | None = None) -> "IndexSet":
        """Read the saved indexes. With a catalog, an index that is missing, unreadable or
        older than the catalog is rebuilt from the vectors in SQLite (no model needed)."""
        folder = Path(folder)
        manifest = cls.read_manifest(folder)
        indexes: dict[tuple[str, str], VectorIndex] = {}
        for space, modality in KEYS:
            path = folder / f"{index_name(space, modality)}.faiss"
            if path.exists():
                try:
                    indexes[(space, modality)] = VectorIndex.from_bytes(path.read_bytes())
                except RuntimeError:
                    pass  # unreadable: rebuilt below when a catalog is at hand
        version = manifest.data_version if manifest else -1
        loaded = cls(folder, indexes, version)
        if catalog is not None and (manifest is None or version != catalog.data_version
                                    or any(k not in indexes and catalog.count_items(*k) for k in KEYS)):
            loaded = cls.rebuild(folder, catalog)
            loaded.rebuilt = True
        return loaded

    @classmethod
    def rebuild(cls, folder: Path, catalog: Catalog) -> "IndexSet":
        """Recreate every index from the catalog's stored vectors."""
        version = catalog.data_version
        indexes: dict[tuple[str, str], VectorIndex] = {}
        for key in KEYS:
            index = None
            for ids, vectors in catalog.iter_vectors(*key):
                if index is None:
                    index = VectorIndex(vectors.shape[1])
                index.add(ids, vectors)
            if index is not None:
                indexes[key] = index
        return cls(folder, indexes, version)

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
                    "dims": {index_name(*k): v.dim for k, v in self.indexes.items()}}
        atomic_write(self.folder / "manifest.json", json.dumps(manifest).encode())
        self.data_version = data_version

    def clean_temp_files(self) -> None:
        for tmp in self.folder.glob(".*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass

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
