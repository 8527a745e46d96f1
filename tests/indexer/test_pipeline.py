"""Incremental indexing through the real pipeline, with the demo models."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from indexer.catalog import open_catalog
from indexer.datadir import DataDir
from indexer.lock import WriterLock
from indexer.pipeline import Indexer, IndexOptions
from indexer.vectors import IndexSet
from tests.conftest import REPO, cli_env
from tests.shapes import write_shape


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    for i, (color, shape) in enumerate([("red", "circle"), ("blue", "square"), ("green", "triangle"),
                                        ("yellow", "star")]):
        write_shape(folder / "img", color, shape, seed=500 + i)
    (folder / "docs").mkdir()
    (folder / "docs" / "whisper.md").write_text("# Whisper\n\nWhisper turns recorded speech into text.\n")
    (folder / "docs" / "faiss.txt").write_text("FAISS searches dense vectors quickly with IndexFlatIP.\n")
    return folder


@pytest.fixture
def make_indexer(tmp_path, demo_encoders):
    clip, text = demo_encoders
    opened = []

    def build(**options) -> Indexer:
        data = DataDir(tmp_path / "data")
        catalog = open_catalog(data.catalog_path)
        opened.append(catalog)
        return Indexer(data, catalog, clip, text, IndexOptions(**{"workers": 2, **options}))

    yield build
    for catalog in opened:
        catalog.close()


def ids_in_index(indexer: Indexer, space: str, modality: str) -> set[int]:
    index = IndexSet.load(indexer.data_dir.indexes_dir).get(space, modality)
    return set(index.ids().tolist()) if index else set()


def test_second_run_reads_nothing_and_encodes_nothing(corpus, make_indexer):
    first = make_indexer().run([corpus])
    assert len(first.added) == 6 and first.images == 4 and first.passages == 2
    second = make_indexer().run([corpus])
    assert second.unchanged == 6 and second.added == second.updated == second.removed == []
    assert second.images == 0 and second.passages == 0


def test_changed_file_is_reembedded(corpus, make_indexer):
    make_indexer().run([corpus])
    doc = corpus / "docs" / "faiss.txt"
    doc.write_text("A completely different note about knitting wool scarves.\n")
    os.utime(doc, ns=(doc.stat().st_atime_ns, doc.stat().st_mtime_ns + 10**9))
    indexer = make_indexer()
    report = indexer.run([corpus])
    assert report.updated == [str(doc)] and report.passages == 1
    hits = indexer.catalog.bm25("knitting", 5)
    assert hits and indexer.catalog.item(hits[0][0]).path == str(doc)
    assert indexer.catalog.bm25("IndexFlatIP", 5) == []


def test_deleted_file_disappears_from_catalog_and_indexes(corpus, make_indexer):
    indexer = make_indexer()
    indexer.run([corpus])
    victim = corpus / "img" / "red-circle-500.png"
    victim_ids = {i for i in ids_in_index(indexer, "clip", "image")
                  if indexer.catalog.item(i).path == str(victim)}
    victim.unlink()
    report = make_indexer().run([corpus])
    assert report.removed == [str(victim)]
    assert not victim_ids & ids_in_index(indexer, "clip", "image")
    assert str(victim) not in indexer.catalog.documents_under([str(corpus)])


def test_moved_and_copied_files_reuse_stored_vectors(corpus, make_indexer):
    make_indexer().run([corpus])
    shutil.move(corpus / "img" / "blue-square-501.png", corpus / "img" / "renamed.png")
    shutil.copy(corpus / "docs" / "whisper.md", corpus / "docs" / "whisper-copy.md")
    indexer = make_indexer()
    report = indexer.run([corpus])
    assert sorted(os.path.basename(p) for p in report.added) == ["renamed.png", "whisper-copy.md"]
    assert [os.path.basename(p) for p in report.removed] == ["blue-square-501.png"]
    assert report.reused == 2 and report.images == 0 and report.passages == 0
    # the reused vectors are really in the index under new ids
    rows = indexer.catalog.documents_under([str(corpus / "img" / "renamed.png")])
    assert rows
    assert indexer.catalog.count_items("clip", "image") == 4


def test_roots_not_being_indexed_are_left_alone(tmp_path, corpus, make_indexer):
    other = tmp_path / "other"
    write_shape(other, "purple", "star")
    make_indexer().run([corpus, other])
    report = make_indexer().run([other])
    assert report.removed == [] and report.unchanged == 1
    assert make_indexer().catalog.counts()["documents"]["image"] == 5


def test_remove_drops_documents_under_a_path(corpus, make_indexer):
    make_indexer().run([corpus])
    indexer = make_indexer()
    removed = indexer.remove([corpus / "docs"])
    assert len(removed) == 2
    assert indexer.catalog.counts()["documents"] == {"image": 4, "text": 0}
    assert ids_in_index(indexer, "text", "text") == set()


def test_a_file_that_vanishes_mid_run_is_skipped_and_the_run_completes(tmp_path, make_indexer):
    folder = tmp_path / "many"
    for i in range(24):
        write_shape(folder, ["red", "blue", "green"][i % 3], "circle", seed=900 + i, size=64)
    files = sorted(folder.iterdir())
    doomed = files[-1]

    def progress(done, total, path):
        if done == 1 and doomed.exists():
            doomed.unlink()

    report = make_indexer(batch_size=2, workers=1).run([folder], progress=progress)
    assert (str(doomed), "file vanished before it could be read") in report.skipped
    assert len(report.added) == 23


def test_ids_are_never_reused(corpus, make_indexer):
    indexer = make_indexer()
    indexer.run([corpus])
    first_ids = set(indexer.catalog.item_ids("clip", "image").tolist())
    victim = corpus / "img" / "green-triangle-502.png"
    victim.unlink()
    write_shape(corpus / "img", "orange", "circle", seed=1)
    make_indexer().run([corpus])
    new_ids = set(indexer.catalog.item_ids("clip", "image").tolist()) - first_ids
    assert new_ids and min(new_ids) > max(first_ids)


def test_second_writer_is_refused_clearly(corpus, tmp_path):
    data = tmp_path / "locked"
    with WriterLock(data):
        proc = subprocess.run([sys.executable, "-m", "searchd", "index", str(corpus), "--data-dir", str(data)],
                              env=cli_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert "another searchd process" in proc.stderr and str(os.getpid()) in proc.stderr


def test_stale_indexes_are_rebuilt_from_the_catalog_on_the_next_run(corpus, make_indexer):
    indexer = make_indexer()
    indexer.run([corpus])
    (indexer.data_dir.indexes_dir / "text-text.faiss").unlink()
    make_indexer().run([corpus])
    assert IndexSet.load(indexer.data_dir.indexes_dir).disagreements(indexer.catalog) == []


def test_vectors_are_unit_norm_float32(corpus, make_indexer):
    indexer = make_indexer()
    indexer.run([corpus])
    for key in (("clip", "image"), ("clip", "text"), ("text", "text")):
        for ids, vectors in indexer.catalog.iter_vectors(*key):
            assert vectors.dtype == np.float32
            np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
