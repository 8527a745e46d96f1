"""A hostile corpus never stops a run: each bad file is skipped with its reason, in the
report and in `searchd status`, the good ones are indexed, and the exit code is 0."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, cli_env, run_cli
from tests.indexer.badfiles import build_bad_corpus


def test_bad_corpus_is_reported_and_good_files_are_indexed(tmp_path):
    corpus = tmp_path / "corpus"
    expected = build_bad_corpus(corpus)
    data_dir = tmp_path / "data"
    out = run_cli("index", str(corpus), "--json", data_dir=data_dir)
    report = json.loads(out.stdout)
    skipped = {os.path.relpath(s["path"], corpus): s["reason"] for s in report["skipped_files"]}
    for name, reason in expected.items():
        if reason is None:
            assert name not in skipped, f"{name} should be indexed, was skipped: {skipped.get(name)}"
        else:
            assert name in skipped, f"{name} should be skipped ({reason}); skipped were {sorted(skipped)}"
            assert reason in skipped[name], (name, skipped[name])
    good = sum(1 for r in expected.values() if r is None)
    assert report["added"] == good

    status = json.loads(run_cli("status", "--json", data_dir=data_dir).stdout)
    in_status = {os.path.relpath(s["path"], corpus): s["reason"] for s in status["skipped_files"]}
    assert in_status == skipped
    assert status["skipped"] == len(skipped)
    assert run_cli("verify", data_dir=data_dir).returncode == 0

    # a second run reaches the same verdicts without reading anything new
    again = json.loads(run_cli("index", str(corpus), "--json", data_dir=data_dir).stdout)
    assert again["unchanged"] == good and again["added"] == 0
    assert {os.path.relpath(s["path"], corpus) for s in again["skipped_files"]} == set(skipped)


def test_fixed_file_is_indexed_and_leaves_the_skip_list(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    broken = corpus / "note.txt"
    broken.write_bytes(b"caf\xe9\n")
    data_dir = tmp_path / "data"
    first = json.loads(run_cli("index", str(corpus), "--json", data_dir=data_dir).stdout)
    assert first["skipped"] == 1
    broken.write_text("café, now in UTF-8\n")
    second = json.loads(run_cli("index", str(corpus), "--json", data_dir=data_dir).stdout)
    assert second["added"] == 1 and second["skipped"] == 0
    assert json.loads(run_cli("status", "--json", data_dir=data_dir).stdout)["skipped"] == 0


def test_unreadable_file_is_skipped_with_permission_denied(tmp_path):
    """Root reads anything through CAP_DAC_OVERRIDE, so as root the run goes through
    setpriv with that capability dropped: chmod 000 then really blocks the read."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ok.md").write_text("A readable note about a green triangle.\n")
    secret = corpus / "secret.md"
    secret.write_text("nobody may read this\n")
    os.chmod(secret, 0o000)
    cmd = [sys.executable, "-m", "searchd", "index", str(corpus), "--json", "--data-dir", str(tmp_path / "data")]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE as root"
        cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *cmd]
    proc = subprocess.run(cmd, env=cli_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["added"] == 1
    assert [(Path(s["path"]).name, s["reason"]) for s in report["skipped_files"]] == [
        ("secret.md", "permission denied")]


def test_a_link_out_of_the_indexed_folder_is_skipped_and_never_served(tmp_path):
    from litestar.testing import TestClient

    from searchd.app import create_app
    from searchd.settings import load_settings

    private = tmp_path / "private"
    private.mkdir()
    (private / "diary.md").write_text("my bank password is hunter2")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.md").write_text("buy milk and eggs")
    (notes / "diary.md").symlink_to(private / "diary.md")
    (notes / "private").symlink_to(private, target_is_directory=True)
    data_dir = tmp_path / "data"
    report = json.loads(run_cli("index", str(notes), "--json", data_dir=data_dir).stdout)
    skipped = {os.path.basename(s["path"]): s["reason"] for s in report["skipped_files"]}
    assert report["added"] == 1 and set(skipped) == {"diary.md", "private"}
    assert all("outside the indexed folders" in r and "--follow-links" in r for r in skipped.values())

    settings = load_settings({"data_dir": data_dir, "models": "demo"}, environ={})
    with TestClient(create_app(settings, warm=False)) as client:
        hits = client.get("/api/search", params={"q": "bank password", "mode": "text-text", "weak": "true"})
        assert [Path(h["path"]).name for h in hits.json()["hits"]] == ["todo.md"]
        for hit in hits.json()["hits"]:
            assert b"hunter2" not in client.get(hit["file_url"]).content

    followed = json.loads(run_cli("index", str(notes), "--follow-links", "--json", data_dir=data_dir).stdout)
    assert followed["added"] == 1 and followed["skipped_files"] == []  # the diary, once
