"""The CLI end to end, with the demo models, as a user runs it."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.conftest import SAMPLE, cli_env, run_cli
from tests.shapes import write_shape


def search_json(data_dir, *args):
    out = run_cli("search", *args, "--json", data_dir=data_dir)
    return json.loads(out.stdout)


def test_text_image_finds_red_circle_first(demo_index):
    result = search_json(demo_index, "a red circle", "--mode", "text-image", "-k", "5")
    assert set(result) == {"query", "mode", "took_ms", "hits", "weak_hidden", "notice"}
    assert result["mode"] == "text-image" and result["query"] == "a red circle"
    top = result["hits"][0]
    assert set(top) == {"id", "kind", "path", "score", "cosine", "weak", "snippet", "copies"}
    assert top["kind"] == "image" and "red-circle" in top["path"], result["hits"]


def test_image_image_with_a_rendered_blue_square_finds_blue_squares(demo_index, tmp_path):
    query = write_shape(tmp_path, "blue", "square")
    result = search_json(demo_index, "--image", str(query), "--mode", "image-image", "-k", "2")
    assert [("blue-square" in h["path"]) for h in result["hits"]] == [True, True], result["hits"]


def test_image_text_finds_the_passage_about_that_shape(demo_index, tmp_path):
    query = write_shape(tmp_path, "blue", "square", seed=77)
    result = search_json(demo_index, "--image", str(query), "--mode", "image-text", "-k", "3")
    assert result["hits"][0]["path"].endswith("shapes/blue-square.md"), result["hits"]
    assert result["hits"][0]["kind"] == "text"


@pytest.mark.parametrize("query, expected", [
    ("turning spoken audio into written words", "whisper.md"),
    ("merging two ranked lists by adding up one over position", "reciprocal-rank-fusion.txt"),
    ("storing a model's weights as small whole numbers instead of floats to save memory", "int8-quantization.md"),
])
def test_text_text_paraphrase_finds_the_right_document(demo_index, query, expected):
    result = search_json(demo_index, query, "--mode", "text-text", "-k", "3")
    assert result["hits"][0]["path"].endswith(expected), result["hits"]
    assert result["hits"][0]["snippet"]


def test_text_text_finds_rare_exact_names(demo_index):
    result = search_json(demo_index, "IndexIVFPQ nprobe", "--mode", "text-text", "-k", "3")
    assert result["hits"][0]["path"].endswith("faiss.md")
    assert "<mark>" in result["hits"][0]["snippet"]


def test_plain_output_is_readable(demo_index):
    out = run_cli("search", "a red circle", "--mode", "text-image", "-k", "2", data_dir=demo_index).stdout
    assert "red-circle" in out.splitlines()[0]


def test_status_reports_counts_models_and_generation(demo_index):
    status = json.loads(run_cli("status", "--json", data_dir=demo_index).stdout)
    assert status["documents"]["image"] >= 48 and status["documents"]["text"] >= 30
    assert status["items"] == sum(status["items_by_index"].values()) > 0
    assert status["skipped"] == 0 and status["generation"] >= 1
    assert status["models"]["clip"]["name"] == "local-dir:demo-clip"
    assert status["models"]["text"]["dim"] == 384
    human = run_cli("status", data_dir=demo_index).stdout
    assert "documents" in human and "generation" in human


def test_verify_detects_damage_and_repair_rebuilds_without_a_model(demo_index_copy):
    assert "ok" in run_cli("verify", data_dir=demo_index_copy).stdout
    (demo_index_copy / "indexes" / "clip-image.faiss").unlink()
    broken = run_cli("verify", data_dir=demo_index_copy, check=False)
    assert broken.returncode == 1 and "clip-image" in broken.stdout
    # a model that cannot load proves the repair does not need one
    env = cli_env(SEARCHD_CLIP_MODEL="local-dir:/nonexistent")
    repaired = run_cli("verify", "--repair", data_dir=demo_index_copy, env=env)
    assert "repaired" in repaired.stdout
    assert run_cli("verify", data_dir=demo_index_copy).returncode == 0
    result = search_json(demo_index_copy, "a red circle", "--mode", "text-image", "-k", "1")
    assert "red-circle" in result["hits"][0]["path"]


def test_verify_repair_rebuilds_a_keyword_index_made_before_chinese_words(demo_index_copy):
    from indexer import keywords
    from indexer.catalog import open_catalog
    from tests.indexer.test_keywords import make_legacy

    catalog = open_catalog(demo_index_copy / "catalog.sqlite3", create=False)
    make_legacy(catalog)
    catalog.close()
    repaired = run_cli("verify", "--repair", data_dir=demo_index_copy)
    assert "rebuilt the keyword index" in repaired.stdout and "ok" in repaired.stdout
    catalog = open_catalog(demo_index_copy / "catalog.sqlite3", create=False)
    assert catalog.fts_tokenizer == keywords.TOKENIZER
    catalog.close()
    hit = search_json(demo_index_copy, "注意力机制", "--mode", "text-text", "-k", "1")["hits"][0]
    assert hit["path"].endswith("attention-zh.md") and "<mark>注意力" in hit["snippet"]


def test_verify_fails_when_the_catalog_moved_past_the_indexes(demo_index_copy):
    db = sqlite3.connect(demo_index_copy / "catalog.sqlite3")
    db.execute("DELETE FROM items WHERE id = (SELECT MIN(id) FROM items WHERE space = 'clip' AND modality = 'image')")
    db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'data_version'")
    db.commit()
    db.close()
    out = run_cli("verify", data_dir=demo_index_copy, check=False)
    assert out.returncode == 1 and "not in the catalog" in out.stdout


def test_remove_takes_documents_out_of_results(demo_index_copy):
    before = search_json(demo_index_copy, "a red circle", "--mode", "text-image", "-k", "1")["hits"][0]["path"]
    out = run_cli("remove", before, data_dir=demo_index_copy)
    assert "removed 1" in out.stdout
    after = search_json(demo_index_copy, "a red circle", "--mode", "text-image", "-k", "5")["hits"]
    assert before not in [h["path"] for h in after]
    assert run_cli("verify", data_dir=demo_index_copy).returncode == 0


def test_search_before_indexing_says_what_to_run(tmp_path):
    out = run_cli("search", "anything", data_dir=tmp_path / "empty", check=False)
    assert out.returncode == 5 and "searchd index" in out.stderr


def test_index_of_a_missing_path_is_a_clear_error(tmp_path):
    out = run_cli("index", str(tmp_path / "nope"), data_dir=tmp_path / "d", check=False)
    assert out.returncode == 2 and "no such file" in out.stderr


@pytest.mark.parametrize("args, env_extra, needle", [
    (("--clip-model", "local-dir:/nonexistent/model"), {}, "no open_clip_config.json"),
    (("--models", "default", "--offline"), {}, "not in the local cache"),
    (("--models", "default"), {}, "cannot be reached"),
    (("--text-model", "/nonexistent/text-model"), {}, "does not exist"),
])
def test_a_model_that_cannot_be_had_fails_fast_with_advice(tmp_path, args, env_extra, needle):
    corpus = tmp_path / "corpus"
    write_shape(corpus, "red", "circle")
    out = run_cli("index", str(corpus), *args, data_dir=tmp_path / "d", env=cli_env(**env_extra), check=False,
                  timeout=120)
    assert out.returncode == 4, out.stderr
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


def test_environment_variables_configure_the_cli(demo_index, tmp_path):
    env = cli_env(SEARCHD_DATA_DIR=str(demo_index))
    out = run_cli("status", "--json", env=env)
    assert json.loads(out.stdout)["data_dir"] == str(demo_index)


def test_a_different_model_is_refused_with_how_to_reembed(demo_index_copy, tmp_path):
    from tests.model_factory import write_random_clip

    other = write_random_clip(tmp_path / "other-clip")
    corpus = tmp_path / "more"
    write_shape(corpus, "green", "star")
    out = run_cli("index", str(corpus), "--clip-model", f"local-dir:{other}", data_dir=demo_index_copy, check=False)
    assert out.returncode == 4 and "--reembed" in out.stderr
    served = run_cli("serve", "--port", "1", data_dir=demo_index_copy,
                     env=cli_env(SEARCHD_CLIP_MODEL=f"local-dir:{other}"), check=False)
    assert served.returncode == 4 and "--reembed" in served.stderr and "Traceback" not in served.stderr
    # --reembed drops the old model's vectors and embeds everything again with the new one
    report = json.loads(run_cli("index", str(corpus), "--reembed", "--json", "--clip-model", f"local-dir:{other}",
                                data_dir=demo_index_copy).stdout)
    assert report["added"] == 1 and report["images"] == 1
    status = json.loads(run_cli("status", "--json", data_dir=demo_index_copy).stdout)
    assert status["models"]["clip"]["name"] == "local-dir:other-clip" and status["models"]["clip"]["dim"] == 32
    assert status["items_by_index"]["clip-image"] == 1 and status["items_by_index"]["clip-text"] == 0
    assert run_cli("verify", data_dir=demo_index_copy).returncode == 0
    # documents of other roots lost their CLIP vectors too: their next run embeds them again
    env = cli_env(SEARCHD_CLIP_MODEL=f"local-dir:{other}")
    again = json.loads(run_cli("index", str(SAMPLE), "--json", data_dir=demo_index_copy, env=env).stdout)
    assert again["unchanged"] == 0 and again["updated"] > 90
    status = json.loads(run_cli("status", "--json", data_dir=demo_index_copy).stdout)
    assert status["items_by_index"]["clip-text"] == status["items_by_index"]["text-text"] > 0


def test_eval_of_the_sample_judgements_meets_the_recorded_lower_bounds(demo_index):
    """`searchd eval` over the shipped judgements; the bounds are re-recorded with
    `python bench/relevance.py --write-expected` when a change is meant to move them."""
    expected = json.loads((SAMPLE / "judgements" / "expected.json").read_text())
    out = run_cli("eval", "sample_data/judgements/en.jsonl", "sample_data/judgements/zh.jsonl", "--json",
                  "--fusion", expected["fusion"], data_dir=demo_index)
    report = json.loads(out.stdout)
    assert report["fusion"] == expected["fusion"] and len(report["queries"]) >= 60
    groups = {f"{g['mode']}/{g['lang'] or '-'}": g for g in report["groups"]}
    assert {g["mode"] for g in report["groups"]} >= {"text-image", "text-text", "text-all", "image-image",
                                                     "image-text", "image-all"}
    below = [f"{key} {name} {groups.get(key, {}).get(name)} < {bound}"
             for key, bounds in expected["min"].items() for name, bound in bounds.items()
             if (groups.get(key, {}).get(name) or 0.0) < bound]
    assert not below, "relevance fell below sample_data/judgements/expected.json:\n" + "\n".join(below)
