"""Filtered search finds exactly what exact search among the passing items would, whether
the filter keeps most of a collection (checked after the search) or a few items (listed
for FAISS to search among), over exact (Flat) and inverted-file (IVF) indexes."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.catalog import DocumentWrite, ItemWrite, open_catalog
from indexer.datadir import DataDir
from indexer.encoders import normalize
from indexer.vectors import IndexPolicy, IndexSet
from searchd.engine import Query, SearchEngine


N = 2000  # 1950 images under /big/, 50 under /small/


@pytest.fixture(scope="module", params=["flat", "ivf"])
def engine(request, tmp_path_factory, demo_encoders):
    """Clustered image vectors, so that neighbours are close, in a Flat or an IVF index
    (exact codes, so that its distances are exact too)."""
    clip, text = demo_encoders
    data = DataDir(tmp_path_factory.mktemp("filters") / "data")
    rng = np.random.default_rng(3)
    dim = clip.identity.dim
    centres = normalize(rng.normal(size=(40, dim)).astype(np.float32))
    vectors = normalize(centres[rng.integers(0, 40, N)] + 0.3 * rng.normal(size=(N, dim)).astype(np.float32))
    catalog = open_catalog(data.catalog_path)
    catalog.check_model("clip", clip.identity)
    catalog.check_model("text", text.identity)
    docs = []
    for i, vector in enumerate(vectors):
        folder = "/small/" if i % 40 == 0 else "/big/"
        docs.append(DocumentWrite(path=f"{folder}img-{i:03d}.jpg", kind="image", size=1, mtime_ns=1,
                                  content_hash=f"{i:032x}", metadata={"width": 8, "height": 8},
                                  items=[ItemWrite("clip", "image", 0, None, vector)]))
    catalog.write_batch(docs)
    indexes = IndexSet.rebuild(data.indexes_dir, catalog, policy=IndexPolicy(kind=request.param, codec="Flat"))
    assert indexes.get("clip", "image").is_ivf == (request.param == "ivf")
    indexes.save(catalog.data_version, catalog.generation + 1)
    catalog.bump_generation()
    catalog.close()
    yield SearchEngine(data, clip, text)


def exact(engine: SearchEngine, source: int, prefix: str, k: int) -> list[int]:
    ids = [int(i) for i in engine.catalog.filtered_item_ids("clip", "image", path_prefix=prefix) if i != source]
    vectors = engine.catalog.get_vectors(ids)
    query = engine.catalog.item_vector(source, "clip")
    return sorted(ids, key=lambda i: -float(vectors[i] @ query))[:k]


@pytest.mark.parametrize("prefix, k", [("/big/", 10), ("/small/", 5), ("/small/", 60), ("/nowhere/", 5)])
def test_filtered_search_matches_exact_search_among_the_passing(engine, prefix, k):
    source = int(engine.catalog.filtered_item_ids("clip", "image", path_prefix="/big/")[7])
    # weak=True: random vectors are all "no better than chance"; what is tested is which ones come back
    result = engine.search(Query(mode="image-image", item_id=source, k=k, path_prefix=prefix, weak=True))
    got = [hit.id for hit in result.hits]
    assert all(hit.path.startswith(prefix) for hit in result.hits)
    assert got == exact(engine, source, prefix, k)
    assert len(got) == min(k, {"/big/": N - N // 40 - 1, "/small/": N // 40, "/nowhere/": 0}[prefix])
