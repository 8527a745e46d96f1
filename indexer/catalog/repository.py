"""Repository over the catalog: every read and write of SQLite goes through here."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from sqlalchemy import create_engine, delete, event, func, insert, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from indexer import keywords
from indexer.catalog.models import (FTS_DDL, FTS_RANK, SCHEMA_VERSION, Base, Document, Item, Meta,
                                    Skipped, Vector)
from indexer.encoders import ModelIdentity
from indexer.errors import CatalogError, ModelMismatchError
from indexer.keywords import STOP_WORDS

#: the (space, modality) pairs that have a FAISS index each
KEYS: tuple[tuple[str, str], ...] = (("clip", "image"), ("clip", "text"), ("text", "text"))


@dataclass
class ItemWrite:
    space: str
    modality: str
    ordinal: int
    text: str | None
    vector: np.ndarray  # (d,) float32, unit norm


@dataclass
class DocumentWrite:
    path: str
    kind: str
    size: int
    mtime_ns: int
    content_hash: str
    metadata: dict
    items: list[ItemWrite]


@dataclass
class ItemRecord:
    id: int
    document_id: int
    space: str
    modality: str
    ordinal: int
    text: str | None
    path: str
    kind: str
    title: str | None
    taken_at: str | None
    content_hash: str
    size: int
    mtime_ns: int
    metadata: dict = field(default_factory=dict)


def _complete(items: list[ItemWrite], kind: str) -> bool:
    """Only a complete set is reused: a space forgotten for re-embedding must not be skipped again."""
    have = {(it.space, it.modality) for it in items}
    if kind == "image":
        return ("clip", "image") in have
    clip_n = sum(1 for it in items if it.space == "clip")
    text_n = sum(1 for it in items if it.space == "text")
    return bool(clip_n) and clip_n == text_n


def _encode_vector(vector: np.ndarray, dtype: str) -> bytes:
    return np.asarray(vector, dtype=np.float16 if dtype == "f2" else np.float32).tobytes()


def _decode_vectors(blobs: Sequence[bytes], dtypes: Sequence[str], dim: int) -> np.ndarray:
    out = np.empty((len(blobs), dim), dtype=np.float32)
    for row, (blob, dt) in enumerate(zip(blobs, dtypes)):
        out[row] = np.frombuffer(blob, dtype=np.float16 if dt == "f2" else np.float32)
    return out


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Catalog:
    """Owns the SQLAlchemy engine of one catalog file."""

    #: a stop word in more passages than this is left out of keyword queries (about 1 ms
    #: of FTS5 scoring per 2,000 passages matched)
    common_term_passages = 2000

    def __init__(self, engine: Engine, path: Path, vector_dtype: str = "f4"):
        self.engine = engine
        self.path = path
        self.vector_dtype = vector_dtype
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return self._sessions()

    def _init_schema(self, create: bool) -> None:
        try:
            with self.engine.begin() as conn:
                if create:
                    Base.metadata.create_all(conn)
                    conn.execute(text(FTS_DDL))
                row = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
                if row is None:
                    if not create:
                        raise CatalogError(f"{self.path} is not a searchd catalog")
                    conn.execute(insert(Meta), [
                        {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                        {"key": "generation", "value": "0"},
                        {"key": "data_version", "value": "0"},
                        {"key": "created_at", "value": json.dumps(time.time())},
                        {"key": "fts_tokenizer", "value": keywords.TOKENIZER},
                    ])
                elif int(row) != SCHEMA_VERSION:
                    raise CatalogError(
                        f"{self.path} has catalog schema {row}, this searchd reads {SCHEMA_VERSION}; "
                        f"index into a new --data-dir")
        except (DatabaseError, OperationalError) as exc:
            raise CatalogError(f"cannot open catalog {self.path}: {exc.orig or exc}") from exc
        if create:
            self.upgrade_keywords()

    # -- meta ----------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(Meta.value).where(Meta.key == key)).scalar()
        return default if value is None else value

    def _set_meta(self, session_or_conn, key: str, value: str) -> None:
        session_or_conn.execute(text(
            "INSERT INTO meta(key, value) VALUES (:k, :v) ON CONFLICT(key) DO UPDATE SET value = :v"),
            {"k": key, "v": value})

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            self._set_meta(conn, key, value)

    #: statistics for SQLite's query planner are gathered from this many items on, and again
    #: whenever the count has doubled or halved since
    statistics_min_items = 1000

    def refresh_statistics(self) -> bool:
        """ANALYZE documents and items when their size has changed enough. Without
        statistics SQLite walks every item of a space to apply a folder or date filter
        (31 ms at 100k items) instead of the path or date index (1.2 ms)."""
        n = self.count_items()
        last = int(self.get_meta("analyzed_items", "0"))
        if n < self.statistics_min_items or (last and last / 2 <= n <= last * 2):
            return False
        with self.engine.begin() as conn:
            conn.execute(text("ANALYZE documents"))
            conn.execute(text("ANALYZE items"))
            self._set_meta(conn, "analyzed_items", str(n))
        return True

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation", "0"))

    @property
    def data_version(self) -> int:
        return int(self.get_meta("data_version", "0"))

    def bump_generation(self) -> int:
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"))
            return int(conn.execute(select(Meta.value).where(Meta.key == "generation")).scalar())

    def model_identity(self, space: str) -> ModelIdentity | None:
        raw = self.get_meta(f"model:{space}")
        return ModelIdentity.from_dict(json.loads(raw)) if raw else None

    def check_model(self, space: str, identity: ModelIdentity, data_dir: Path | str = "") -> None:
        """Refuse to mix vectors of two models in one space; stamp the model on first use."""
        stored = self.model_identity(space)
        if stored is None:
            if self.count_items(space) == 0:
                self.set_meta(f"model:{space}", json.dumps(identity.to_dict()))
                return
            raise CatalogError(f"space {space!r} holds vectors but no model stamp; run `searchd verify`")
        if not stored.same_model(identity):
            raise ModelMismatchError(
                f"the {space} space in {data_dir or self.path.parent} was filled by "
                f"{stored.describe()}, but {identity.describe()} is configured. Use the same model, "
                f"or re-embed everything with `searchd index --reembed PATH...`, or index into "
                f"another --data-dir.")

    def forget_space(self, space: str) -> list[int]:
        """Drop every item of a space (before re-embedding with another model)."""
        with self.session() as s, s.begin():
            ids = list(s.scalars(select(Item.id).where(Item.space == space)))
            self._delete_items(s, ids)
            s.execute(delete(Meta).where(Meta.key == f"model:{space}"))
            # every document lost its vectors in this space: make the next run of any
            # root see it as changed, so it is embedded again even without --reembed
            s.execute(update(Document).values(mtime_ns=-1))
            self._bump_data_version(s)
        return ids

    # -- reads ---------------------------------------------------------------------

    def _under(self, columns: tuple, path_column, roots: Iterable[str]) -> dict[str, tuple]:
        """path -> the other columns, for rows whose path is a root or lies below one."""
        out = {}
        with self.engine.connect() as conn:
            for root in roots:
                prefix = root.rstrip("/") + "/"
                rows = conn.execute(select(path_column, *columns).where(
                    (path_column == root) | (func.substr(path_column, 1, len(prefix)) == prefix)))
                for path, *rest in rows:
                    out[path] = tuple(rest)
        return out

    def documents_under(self, roots: Iterable[str]) -> dict[str, tuple[int, int, int, str]]:
        """path -> (id, size, mtime_ns, content_hash) for documents below any root."""
        return self._under((Document.id, Document.size, Document.mtime_ns, Document.content_hash),
                           Document.path, roots)

    def skipped_under(self, roots: Iterable[str]) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, reason) for skipped files below any root."""
        return self._under((Skipped.size, Skipped.mtime_ns, Skipped.reason), Skipped.path, roots)

    def reusable_items(self, content_hashes: Sequence[str], kind: str) -> dict[str, list[ItemWrite]]:
        """Vectors of indexed documents with the same bytes (moved or copied files), for a
        whole batch in a few queries: content hash -> items, for hashes with a complete set."""
        found: dict[str, int] = {}
        wanted = list(dict.fromkeys(content_hashes))
        with self.session() as s:
            for start in range(0, len(wanted), 500):
                for doc_id, digest in s.execute(
                        select(Document.id, Document.content_hash)
                        .where(Document.content_hash.in_(wanted[start:start + 500]), Document.kind == kind)):
                    found.setdefault(digest, doc_id)
            by_doc: dict[int, list[ItemWrite]] = defaultdict(list)
            doc_ids = list(found.values())
            for start in range(0, len(doc_ids), 500):
                rows = s.execute(select(Item.document_id, Item.space, Item.modality, Item.ordinal, Item.text,
                                        Vector.data, Vector.dtype, Vector.dim)
                                 .join(Vector, Vector.item_id == Item.id)
                                 .where(Item.document_id.in_(doc_ids[start:start + 500])).order_by(Item.id))
                for doc_id, space, modality, ordinal, text_, data, dt, dim in rows:
                    by_doc[doc_id].append(ItemWrite(space, modality, ordinal, text_,
                                                    _decode_vectors([data], [dt], dim)[0]))
        out = {}
        for digest, doc_id in found.items():
            items = by_doc.get(doc_id, [])
            if _complete(items, kind):
                out[digest] = items
        return out

    def count_items(self, space: str | None = None, modality: str | None = None) -> int:
        q = select(func.count(Item.id))
        if space:
            q = q.where(Item.space == space)
        if modality:
            q = q.where(Item.modality == modality)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar())

    def counts(self) -> dict:
        with self.engine.connect() as conn:
            docs = dict(conn.execute(select(Document.kind, func.count()).group_by(Document.kind)).all())
            items = {f"{sp}-{mo}": n for sp, mo, n in conn.execute(
                select(Item.space, Item.modality, func.count()).group_by(Item.space, Item.modality))}
            skipped = conn.execute(select(func.count(Skipped.id))).scalar()
        return {"documents": {"image": docs.get("image", 0), "text": docs.get("text", 0)},
                "items": {f"{sp}-{mo}": items.get(f"{sp}-{mo}", 0) for sp, mo in KEYS},
                "skipped": int(skipped)}

    def skipped(self, limit: int | None = None) -> list[tuple[str, str]]:
        q = select(Skipped.path, Skipped.reason).order_by(Skipped.path)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q)]

    def item_ids(self, space: str, modality: str) -> np.ndarray:
        with self.engine.connect() as conn:
            ids = conn.execute(select(Item.id).where(Item.space == space, Item.modality == modality)
                               .order_by(Item.id)).scalars().all()
        return np.asarray(ids, dtype=np.int64)

    def iter_vectors(self, space: str, modality: str, chunk: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids int64, vectors float32) in chunks, for rebuilding a FAISS index without a model."""
        last = -1
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(select(Item.id, Vector.data, Vector.dtype, Vector.dim)
                                    .join(Vector, Vector.item_id == Item.id)
                                    .where(Item.space == space, Item.modality == modality, Item.id > last)
                                    .order_by(Item.id).limit(chunk)).all()
            if not rows:
                return
            dim = rows[0][3]
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, _decode_vectors([r[1] for r in rows], [r[2] for r in rows], dim)
            last = int(ids[-1])

    def get_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Vector.item_id, Vector.data, Vector.dtype, Vector.dim)
                                .where(Vector.item_id.in_(list(ids)))).all()
        return {r[0]: _decode_vectors([r[1]], [r[2]], r[3])[0] for r in rows}

    def item_vector(self, item_id: int, space: str) -> np.ndarray | None:
        """The vector of an item in ``space``: its own, or that of the same passage (or
        image) of its document in the other space; None when the document has none there."""
        with self.engine.connect() as conn:
            own = conn.execute(select(Item.document_id, Item.ordinal, Item.space).where(Item.id == item_id)).first()
            if own is None:
                return None
            twin = item_id if own.space == space else conn.execute(
                select(Item.id).where(Item.document_id == own.document_id, Item.ordinal == own.ordinal,
                                      Item.space == space)).scalar()
        if twin is None:
            return None
        return self.get_vectors([twin]).get(twin)

    def items(self, ids: Sequence[int]) -> dict[int, ItemRecord]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        out: dict[int, ItemRecord] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(
                    select(Item.id, Item.document_id, Item.space, Item.modality, Item.ordinal, Item.text,
                           Document.path, Document.kind, Document.title, Document.taken_at,
                           Document.content_hash, Document.size, Document.mtime_ns, Document.meta_json)
                    .join(Document, Document.id == Item.document_id)
                    .where(Item.id.in_(ids[start:start + 500]))).all()
                for r in rows:
                    out[r[0]] = ItemRecord(*r[:13], metadata=json.loads(r[13] or "{}"))
        return out

    def item(self, item_id: int) -> ItemRecord | None:
        return self.items([item_id]).get(int(item_id))

    @staticmethod
    def _filtered(q, kind: str | None, path_prefix: str | None, taken_after: str | None,
                  taken_before: str | None):
        if kind:
            q = q.where(Document.kind == kind)
        if path_prefix:
            # a range on the indexed path finds the rows; substr keeps it exact
            q = q.where(Document.path >= path_prefix, Document.path < path_prefix + "\U0010ffff",
                        func.substr(Document.path, 1, len(path_prefix)) == path_prefix)
        if taken_after:
            q = q.where(Document.taken_at >= taken_after)
        if taken_before:
            q = q.where(Document.taken_at <= taken_before)
        return q

    def filtered_item_ids(self, space: str, modality: str, *, kind: str | None = None,
                          path_prefix: str | None = None, taken_after: str | None = None,
                          taken_before: str | None = None) -> np.ndarray:
        """Every item of a space whose document passes the filters."""
        q = self._filtered(select(Item.id).join(Document, Document.id == Item.document_id)
                           .where(Item.space == space, Item.modality == modality),
                           kind, path_prefix, taken_after, taken_before)
        with self.engine.connect() as conn:
            return np.asarray(conn.execute(q).scalars().all(), dtype=np.int64)

    def items_named(self, space: str, modality: str, words: Sequence[str], limit: int) -> dict[int, str]:
        """{item id: path} of items whose file name holds one of ``words`` (a scan of the
        paths: for the few words of one query, when nothing better reads them)."""
        words = [w for w in words if w]
        if not words:
            return {}
        name_holds = [Document.path.like(f"%{w.replace('%', '').replace('_', '')}%") for w in words]
        q = (select(Item.id, Document.path).join(Document, Document.id == Item.document_id)
             .where(Item.space == space, Item.modality == modality, or_(*name_holds)).limit(limit))
        with self.engine.connect() as conn:
            return {int(i): path for i, path in conn.execute(q).all()
                    if any(w.lower() in path.rsplit("/", 1)[-1].lower() for w in words)}

    def passing_filters(self, item_ids: Sequence[int], *, kind: str | None = None,
                        path_prefix: str | None = None, taken_after: str | None = None,
                        taken_before: str | None = None) -> set[int]:
        """Those of ``item_ids`` whose document passes the filters (cheap for a few thousand)."""
        ids = [int(i) for i in item_ids]
        out: set[int] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                q = self._filtered(select(Item.id).join(Document, Document.id == Item.document_id)
                                   .where(Item.id.in_(ids[start:start + 500])),
                                   kind, path_prefix, taken_after, taken_before)
                out.update(conn.execute(q).scalars().all())
        return out

    def bm25(self, query: str, limit: int) -> list[tuple[int, float]]:
        """(item id, score) best first, from SQLite FTS5; higher score is better."""
        with self.engine.connect() as conn:
            # A catalog whose table is of an older form (until its writer rebuilds it) is
            # queried in that form: worse for Chinese than words, but it still finds things.
            legacy = conn.execute(select(Meta.value).where(Meta.key == "fts_tokenizer")).scalar() \
                != keywords.TOKENIZER
            terms = keywords.query_words(query, legacy=legacy)
            if not terms:
                return []
            # FTS5 scores every passage that matches: a stop word in most of 300k passages
            # made "how does the ..." take 200 ms instead of 1.4 ms. Such a word says little
            # there, so once it is that common it is left out (unless nothing else is left).
            try:
                common = {t for t in set(terms) if t in STOP_WORDS and conn.execute(
                    text("SELECT count(*) FROM (SELECT 1 FROM passages_fts WHERE passages_fts MATCH :t LIMIT :n)"),
                    {"t": keywords.fts_phrase(t), "n": self.common_term_passages + 1}).scalar()
                    > self.common_term_passages}
                match = keywords.fts_match(query, common, legacy=legacy)
                rank = "bm25(passages_fts)" if legacy else FTS_RANK
                rows = conn.execute(text(f"SELECT rowid, {rank} AS r FROM passages_fts "
                                         "WHERE passages_fts MATCH :m ORDER BY r LIMIT :n"),
                                    {"m": match, "n": limit}).all()
            except OperationalError:
                return []
        return [(int(r[0]), -float(r[1])) for r in rows]

    def last_run(self) -> dict | None:
        raw = self.get_meta("last_run")
        return json.loads(raw) if raw else None

    # -- writes --------------------------------------------------------------------

    @property
    def fts_tokenizer(self) -> str:
        """How the rows of the keyword table were made (keywords.TOKENIZER when current)."""
        return self.get_meta("fts_tokenizer", keywords.LEGACY_TOKENIZER)

    #: passages re-tokenized per statement while rebuilding the keyword table
    fts_rebuild_chunk = 2000

    def upgrade_keywords(self) -> bool:
        """Rebuild the keyword table from the items' stored text when it was made by
        another form of keywords.fts_body; no model is needed and no vector changes.
        For the writer only (open_catalog(create=True), write_batch, verify --repair):
        readers query an old table in its own form until then. True when rebuilt."""
        if self.fts_tokenizer == keywords.TOKENIZER:
            return False
        with self.engine.connect() as conn:
            # An explicit BEGIN: pysqlite would otherwise run DROP and CREATE outside any
            # transaction, and a crash between them would leave readers an empty table.
            # IMMEDIATE takes the write lock before the stamp is read again.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            stamp = conn.execute(select(Meta.value).where(Meta.key == "fts_tokenizer")).scalar()
            if stamp == keywords.TOKENIZER:
                return False
            conn.exec_driver_sql("DROP TABLE IF EXISTS passages_fts")
            conn.exec_driver_sql(FTS_DDL)
            last = -1
            while True:
                rows = conn.execute(select(Item.id, Item.text).where(Item.space == "text", Item.id > last)
                                    .order_by(Item.id).limit(self.fts_rebuild_chunk)).all()
                if not rows:
                    break
                conn.execute(text("INSERT INTO passages_fts(rowid, body, subwords) VALUES (:id, :body, :sub)"),
                             [dict(zip(("body", "sub"), keywords.fts_body(t or "")), id=i) for i, t in rows])
                last = rows[-1][0]
            self._set_meta(conn, "fts_tokenizer", keywords.TOKENIZER)
            conn.commit()
        return True

    def _bump_data_version(self, s: Session) -> None:
        s.execute(text("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'data_version'"))

    def _delete_items(self, s: Session, item_ids: Sequence[int]) -> None:
        for start in range(0, len(item_ids), 500):
            chunk = list(item_ids[start:start + 500])
            s.execute(text(f"DELETE FROM passages_fts WHERE rowid IN ({','.join(map(str, chunk))})"))
            s.execute(delete(Vector).where(Vector.item_id.in_(chunk)))
            s.execute(delete(Item).where(Item.id.in_(chunk)))

    def _doc_items(self, s: Session, doc_ids: Sequence[int]) -> dict[tuple[str, str], list[int]]:
        out: dict[tuple[str, str], list[int]] = defaultdict(list)
        for start in range(0, len(doc_ids), 500):
            for item_id, space, modality in s.execute(
                    select(Item.id, Item.space, Item.modality)
                    .where(Item.document_id.in_(list(doc_ids[start:start + 500])))):
                out[(space, modality)].append(item_id)
        return out

    def write_batch(self, documents: Sequence[DocumentWrite], *, remove_paths: Sequence[str] = (),
                    skips: Sequence[tuple[str, str, int, int]] = ()) -> tuple[
                        dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], dict[tuple[str, str], list[int]]]:
        """Write documents (replacing any at the same path), remove paths and record skips,
        all in one transaction. Returns (added, removed): per (space, modality), the new
        (ids, vectors) and the removed item ids, for the caller to mirror into FAISS."""
        removed: dict[tuple[str, str], list[int]] = defaultdict(list)
        added_ids: dict[tuple[str, str], list[int]] = defaultdict(list)
        added_vecs: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
        now = time.time()
        self.upgrade_keywords()  # rows of two forms in one table would match neither query form
        with self.session() as s, s.begin():
            paths = [d.path for d in documents] + list(remove_paths)
            old_ids: list[int] = []
            for start in range(0, len(paths), 500):
                old_ids += list(s.scalars(select(Document.id).where(Document.path.in_(paths[start:start + 500]))))
            if old_ids:
                for key, ids in self._doc_items(s, old_ids).items():
                    removed[key].extend(ids)
                    self._delete_items(s, ids)
                for start in range(0, len(old_ids), 500):
                    s.execute(delete(Document).where(Document.id.in_(old_ids[start:start + 500])))
            if paths:
                for start in range(0, len(paths), 500):
                    s.execute(delete(Skipped).where(Skipped.path.in_(paths[start:start + 500])))
            # one multi-row INSERT per table for the whole batch (ids back in parameter order)
            doc_ids = list(s.scalars(insert(Document).returning(Document.id, sort_by_parameter_order=True), [{
                "path": doc.path, "kind": doc.kind, "size": doc.size, "mtime_ns": doc.mtime_ns,
                "content_hash": doc.content_hash, "title": (doc.metadata or {}).get("title"),
                "taken_at": (doc.metadata or {}).get("taken_at"),
                "meta_json": json.dumps(doc.metadata or {}, ensure_ascii=False), "indexed_at": now}
                for doc in documents])) if documents else []
            items = [(doc_id, it) for doc_id, doc in zip(doc_ids, documents) for it in doc.items]
            if items:
                item_ids = list(s.scalars(insert(Item).returning(Item.id, sort_by_parameter_order=True), [
                    {"document_id": doc_id, "space": it.space, "modality": it.modality,
                     "ordinal": it.ordinal, "text": it.text} for doc_id, it in items]))
                s.execute(insert(Vector), [
                    {"item_id": item_id, "dtype": self.vector_dtype, "dim": int(it.vector.shape[0]),
                     "data": _encode_vector(it.vector, self.vector_dtype)}
                    for item_id, (_, it) in zip(item_ids, items)])
                fts_rows = [dict(zip(("body", "sub"), keywords.fts_body(it.text or "")), id=item_id)
                            for item_id, (_, it) in zip(item_ids, items) if it.space == "text"]
                if fts_rows:
                    s.execute(text("INSERT INTO passages_fts(rowid, body, subwords) VALUES (:id, :body, :sub)"),
                              fts_rows)
                for item_id, (_, it) in zip(item_ids, items):
                    added_ids[(it.space, it.modality)].append(item_id)
                    added_vecs[(it.space, it.modality)].append(it.vector)
            for path, reason, size, mtime_ns in skips:
                s.execute(text("INSERT INTO skipped(path, reason, size, mtime_ns, at) VALUES (:p, :r, :s, :m, :t) "
                               "ON CONFLICT(path) DO UPDATE SET reason = :r, size = :s, mtime_ns = :m, at = :t"),
                          {"p": path, "r": reason, "s": size, "m": mtime_ns, "t": now})
            self._bump_data_version(s)
        added = {key: (np.asarray(added_ids[key], dtype=np.int64),
                       np.stack(added_vecs[key]).astype(np.float32))
                 for key in added_ids}
        return added, dict(removed)

    def forget_skips(self, paths: Sequence[str]) -> None:
        if not paths:
            return
        with self.session() as s, s.begin():
            for start in range(0, len(paths), 500):
                s.execute(delete(Skipped).where(Skipped.path.in_(list(paths[start:start + 500]))))


def open_catalog(path: str | Path, *, create: bool = True, vector_dtype: str = "f4") -> Catalog:
    path = Path(path)
    if not create and not path.exists():
        raise CatalogError(f"no catalog at {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", _sqlite_pragmas)
    catalog = Catalog(engine, path, vector_dtype=vector_dtype)
    catalog._init_schema(create=create)
    return catalog
