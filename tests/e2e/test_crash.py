"""A run killed with SIGKILL part-way leaves an index that the next run completes:
`searchd verify` accepts it, nothing is duplicated and nothing is lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, cli_env, run_cli
from tests.shapes import write_shape

COLORS = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "triangle", "star")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash-corpus")
    n = 0
    for seed in range(4):
        for color in COLORS:
            for shape in SHAPES:
                write_shape(folder / f"set{seed}", color, shape, seed=1000 + n, size=96)
                n += 1
    for i in range(12):
        (folder / f"note-{i}.md").write_text(f"# Note {i}\n\nThe {COLORS[i % 6]} {SHAPES[i % 4]} note number {i}.\n\n"
                                             + "More words about shapes and colours. " * 20)
    return folder, n + 12


def data_version(data_dir) -> int:
    try:
        db = sqlite3.connect(f"file:{data_dir / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=1)
        try:
            return int(db.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0])
        finally:
            db.close()
    except (sqlite3.Error, TypeError):
        return 0


@pytest.mark.parametrize("kill_after_commits", [0, 3, 8])
def test_sigkill_mid_run_then_next_run_completes_cleanly(corpus, tmp_path, kill_after_commits):
    folder, files = corpus
    data_dir = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "searchd", "index", str(folder), "--data-dir", str(data_dir),
                             "--batch-size", "4", "--workers", "1"],
                            env=cli_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (data_dir / "catalog.sqlite3").exists() and data_version(data_dir) >= kill_after_commits:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: make the corpus bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = data_version(data_dir)

    # the next run picks up where the killed one stopped
    report = json.loads(run_cli("index", str(folder), "--json", data_dir=data_dir).stdout)
    assert report["added"] + report["unchanged"] == files
    assert report["skipped"] == 0
    if committed >= 3:
        assert report["unchanged"] > 0, "committed batches must survive the kill"
    assert run_cli("verify", data_dir=data_dir).returncode == 0

    db = sqlite3.connect(data_dir / "catalog.sqlite3")
    try:
        docs = db.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM documents").fetchone()
        assert docs == (files, files)
        per_image = db.execute("SELECT COUNT(*) FROM items i JOIN documents d ON d.id = i.document_id "
                               "WHERE d.kind = 'image' GROUP BY d.id HAVING COUNT(*) != 1").fetchall()
        assert per_image == []
        orphans = db.execute("SELECT COUNT(*) FROM items WHERE id NOT IN (SELECT item_id FROM vectors)").fetchone()
        assert orphans == (0,)
    finally:
        db.close()
    hits = json.loads(run_cli("search", "a red circle", "--mode", "text-image", "--json", "-k", "3",
                              data_dir=data_dir).stdout)["hits"]
    assert len(hits) == 3 and len({h["path"] for h in hits}) == 3
