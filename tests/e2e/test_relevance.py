"""What a person sees of the ranking, through the CLI and the API, with the demo models:
one calibrated list per query, a relevance floor, near-duplicates folded, whole-word
highlights, and Chinese and English queries that find each other's passages."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from searchd.app import create_app
from searchd.settings import load_settings
from tests.conftest import COFFEE, DEMO_CLIP, OFFLINE_ENV


@pytest.fixture(scope="module", autouse=True)
def _logging_as_it_was():
    """The CLI quiets library loggers (the root one too) in the process it runs in; this
    process goes on to test other things' log messages, so put the levels back."""
    named = {*logging.root.manager.loggerDict, "transformers", "sentence_transformers", "open_clip",
             "huggingface_hub"}
    loggers = [logging.getLogger(), *map(logging.getLogger, named)]
    levels = [(logger, logger.level) for logger in loggers if isinstance(logger, logging.Logger)]
    yield
    for logger, level in levels:
        logger.setLevel(level)


def run_search(data_dir: Path, *args: str) -> str:
    """`searchd search ARGS` through the real command, in this process (models load in seconds)."""
    from searchd.cli import cli

    env = {k: None for k in os.environ if k.startswith("SEARCHD_")} | OFFLINE_ENV
    result = CliRunner().invoke(cli, ["search", *args, "--data-dir", str(data_dir), "--models", "demo"],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def cli_search(data_dir: Path, query: str, *args: str) -> dict:
    return json.loads(run_search(data_dir, query, *args, "--json"))


def names(hits: list[dict]) -> list[str]:
    return [Path(h["path"]).name for h in hits]


@pytest.fixture(scope="module")
def client(demo_index, demo_engine):
    settings = load_settings({"data_dir": demo_index, "models": "demo"}, environ={})
    with TestClient(create_app(settings, engine=demo_engine, warm=False)) as c:
        yield c


def search(client, **params) -> dict:
    r = client.get("/api/search", params=params)
    assert r.status_code == 200, r.text
    return r.json()


# --- one list, calibrated -----------------------------------------------------------------

def test_a_query_no_image_matches_shows_no_image_in_everything(demo_index, client):
    query = "how do I compress vectors to save memory"
    answers = [cli_search(demo_index, query, "--mode", "text-all", "-k", "10"),
               search(client, q=query, mode="text-all", k=10), search(client, q="speech recognition", k=10)]
    for body in answers:
        assert body["hits"] and all(h["kind"] == "text" for h in body["hits"]), names(body["hits"])
        assert body["weak_hidden"] > 0  # the images are there, below the floor


def test_a_red_circle_comes_first_in_everything(demo_index, client):
    for body in (cli_search(demo_index, "a red circle", "--mode", "text-all", "-k", "5"),
                 search(client, q="a red circle", mode="text-all", k=5)):
        assert "red-circle" in body["hits"][0]["path"], names(body["hits"])
        assert {"red-circle-1.png", "red-circle-2.png"} <= set(names(body["hits"]))


def test_a_strong_passage_outranks_a_weak_image(client):
    hits = search(client, q="IndexIVFPQ nprobe", mode="text-all", k=30, weak="true")["hits"]
    assert hits[0]["path"].endswith("faiss.md") and not hits[0]["weak"]
    images = [h for h in hits if h["kind"] == "image"]
    assert images and all(h["weak"] and h["score"] < hits[0]["score"] for h in images)


def test_a_strong_image_outranks_weak_passages(client):
    hits = search(client, q="a yellow star", mode="text-all", k=30, weak="true")["hits"]
    image = next(h for h in hits if h["kind"] == "image")
    assert "yellow-star" in image["path"] and not image["weak"]
    weak_passages = [h for h in hits if h["kind"] == "text" and h["weak"]]
    assert weak_passages and all(h["score"] < image["score"] for h in weak_passages)


def test_the_cli_says_when_nothing_is_close(demo_index):
    out = run_search(demo_index, "a pink hexagon", "--mode", "text-image")
    assert "no close matches" in out and "--weak" in out
    weak = run_search(demo_index, "a pink hexagon", "--mode", "text-image", "--weak", "-k", "3")
    assert weak.count("(weak)") == 3


# --- near-duplicates ----------------------------------------------------------------------

def test_copies_of_a_photo_fold_into_one_hit_and_unfold_on_request(copies_index):
    settings = load_settings({"data_dir": copies_index, "models": "demo"}, environ={})
    with TestClient(create_app(settings, warm=False)) as c:
        def similar(**params):
            r = c.post("/api/search/image", params={"mode": "image-image", "k": 10, **params},
                       files={"file": ("q.jpg", COFFEE.read_bytes(), "image/jpeg")})
            assert r.status_code == 200, r.text
            return r.json()["hits"]

        folded = similar()
        coffees = [h for h in folded if "coffee" in h["path"]]
        assert len(coffees) == 1, names(folded)
        assert sorted(Path(c["path"]).name for c in coffees[0]["copies"]) == sorted(
            {"coffee.jpg", "coffee-copy.jpg", "coffee-small.jpg"} - {Path(coffees[0]["path"]).name})
        apart = similar(collapse="false")
        assert sorted(n for n in names(apart) if "coffee" in n) == ["coffee-copy.jpg", "coffee-small.jpg",
                                                                     "coffee.jpg"]
        assert all(h["copies"] == [] for h in apart)


# --- Chinese and English ------------------------------------------------------------------

def marks(snippet: str) -> list[str]:
    return re.findall(r"<mark>(.*?)</mark>", snippet)


def test_chinese_highlights_cover_whole_words(client):
    hit = search(client, q="注意力机制是什么", mode="text-text", k=1)["hits"][0]
    assert hit["path"].endswith("attention-zh.md")
    assert marks(hit["snippet"]) and all(len(m) >= 2 for m in marks(hit["snippet"])), hit["snippet"]
    assert "注意力" in "".join(marks(hit["snippet"]))


@pytest.mark.parametrize("query, expected", [
    ("本地运行的兼容 OpenAI 接口的开源替代品", "localai.md"),                # Chinese -> English
    ("在多块 GPU 上高吞吐地部署大模型", "vllm.rst"),
    ("LoRA low-rank adaptation for fine-tuning", "lora-zh.md"),             # English -> Chinese
    ("knowledge distillation from a teacher into a small student model", "knowledge-distillation-zh.md"),
    ("LoRA 微调", "lora-zh.md"),                                            # mixed
])
def test_queries_find_passages_across_chinese_and_english(client, query, expected):
    hits = search(client, q=query, mode="text-text", k=3)["hits"]
    assert expected in names(hits), names(hits)


def test_the_cli_finds_passages_across_chinese_and_english(demo_index):
    hits = cli_search(demo_index, "本地运行的兼容 OpenAI 接口的开源替代品", "--mode", "text-text", "-k", "3")["hits"]
    assert "localai.md" in names(hits), names(hits)
    hits = cli_search(demo_index, "LoRA low-rank adaptation for fine-tuning", "--mode", "text-text", "-k", "1")["hits"]
    assert names(hits) == ["lora-zh.md"]


def test_a_chinese_query_finds_red_circles_first(demo_index):
    hits = cli_search(demo_index, "红色的圆形", "--mode", "text-image", "-k", "2")["hits"]
    assert names(hits) in (["red-circle-1.png", "red-circle-2.png"], ["red-circle-2.png", "red-circle-1.png"])


def test_an_english_only_clip_finds_images_for_chinese_through_the_passages(demo_index, tmp_path):
    """The same weights, declared English-only: a Chinese query then reaches images through the
    passages the text model finds (and their CLIP vectors), and the answer says so."""
    english_only = tmp_path / "english-clip"
    shutil.copytree(DEMO_CLIP, english_only)
    config_path = english_only / "open_clip_config.json"
    config = json.loads(config_path.read_text())
    config["demo_train"]["languages"] = ["en"]
    config_path.write_text(json.dumps(config))
    body = cli_search(demo_index, "红色的圆形", "--mode", "text-image", "-k", "3",
                      "--clip-model", f"local-dir:{english_only}")
    assert body["notice"] and "English only" in body["notice"]
    assert names(body["hits"])[:2] in (["red-circle-1.png", "red-circle-2.png"],
                                       ["red-circle-2.png", "red-circle-1.png"]), names(body["hits"])
    english = cli_search(demo_index, "a red circle", "--mode", "text-image", "-k", "1",
                         "--clip-model", f"local-dir:{english_only}")
    assert english["notice"] is None and "red-circle" in english["hits"][0]["path"]
