"""LLM answers with citations, against a real OpenAI-compatible HTTP server (tests/searchd/fake_openai.py)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from PIL import Image

from indexer.catalog import ItemRecord
from indexer.datadir import DataDir
from searchd.answer import (NOT_CONFIGURED, Answerer, LLMNotConfiguredError, cited_numbers,
                            select_sources)
from searchd.engine import Hit
from searchd.settings import Settings
from tests.conftest import DEMO_CLIP, OFFLINE_ENV, REPO, SAMPLE, cli_env, free_port
from tests.searchd.fake_openai import MODEL, FakeOpenAI

QUESTION = "What is BM25?"


# --- fixtures and helpers --------------------------------------------------------------

@pytest.fixture(scope="module")
def fake():
    server = FakeOpenAI().start()
    yield server
    server.stop()


def llm_settings(fake: FakeOpenAI, data_dir: Path, **changes) -> Settings:
    values = dict(data_dir=data_dir, models="demo", offline=True, llm_base_url=fake.base_url, llm_model=MODEL,
                  llm_timeout=5.0, llm_connect_timeout=2.0)
    values.update(changes)
    return Settings(**values)


def record(item_id: int, kind: str, text: str | None = None, *, path: str | None = None, ordinal: int = 0,
           metadata: dict | None = None, title: str | None = None) -> ItemRecord:
    path = path or (f"/docs/doc{item_id}.md" if kind == "text" else f"/photos/img{item_id}.jpg")
    return ItemRecord(id=item_id, document_id=item_id, space="text" if kind == "text" else "clip", modality=kind,
                      ordinal=ordinal, text=text, path=path, kind=kind, title=title,
                      taken_at=(metadata or {}).get("taken_at"), content_hash=f"{item_id:02x}" * 16, size=1000,
                      mtime_ns=0, metadata=metadata or {})


def text_hit(item_id: int, text: str, **kw) -> Hit:
    rec = record(item_id, "text", text, **kw)
    return Hit(id=item_id, kind="text", path=rec.path, score=0.9 - item_id / 100, snippet=text[:50],
               document_id=item_id, record=rec)


def image_hit(item_id: int, **metadata) -> Hit:
    rec = record(item_id, "image", metadata=metadata)
    return Hit(id=item_id, kind="image", path=rec.path, score=0.3, snippet="", document_id=item_id, record=rec)


HITS = [text_hit(11, "BM25 ranks documents by term frequency and inverse document frequency."),
        text_hit(12, "FAISS searches dense vectors."),
        image_hit(13, width=640, height=480, format="JPEG")]


def run(coro):
    return asyncio.run(coro)


async def ask(settings: Settings, hits=HITS, question: str = QUESTION):
    async with Answerer(settings) as answerer:
        return await answerer.answer(question, hits)


async def ask_stream(settings: Settings, hits=HITS, question: str = QUESTION):
    async with Answerer(settings) as answerer:
        return [event async for event in answerer.stream(question, hits)]


# --- citations -------------------------------------------------------------------------

def test_citation_numbers_in_every_common_form():
    assert cited_numbers("a [1], b [2, 3], c [4][5], d [6-7], e 【8】 and [1]") == [1, 2, 3, 4, 5, 6, 7, 8]
    assert cited_numbers("no citations, [a] or [] here") == []


def test_citations_map_to_the_hits_and_unknown_numbers_are_dropped(fake, tmp_path):
    fake.script("answer", text="BM25 weighs terms [1]. Vectors are elsewhere [2, 3][1]. Nonsense [9] [0].")
    result = run(ask(llm_settings(fake, tmp_path)))
    assert result.error is None and result.answer.startswith("BM25 weighs terms [1].")
    assert result.citations == [{"n": 1, "id": 11, "path": "/docs/doc11.md", "kind": "text"},
                                {"n": 2, "id": 12, "path": "/docs/doc12.md", "kind": "text"},
                                {"n": 3, "id": 13, "path": "/photos/img13.jpg", "kind": "image"}]
    assert {c["id"] for c in result.citations} <= {h.id for h in HITS}
    assert result.model == MODEL
    assert fake.last.body["stream"] is False and fake.last.body["model"] == MODEL


def test_stream_gives_tokens_then_citations_then_done(fake, tmp_path):
    text = "BM25 is a ranking function [1]; see also [7]."
    fake.script("answer", text=text)
    events = run(ask_stream(llm_settings(fake, tmp_path)))
    kinds = [k for k, _ in events]
    assert kinds[-2:] == ["citations", "done"] and set(kinds[:-2]) == {"token"} and len(kinds) > 4
    assert "".join(p for k, p in events if k == "token") == text
    assert events[-2][1] == [{"n": 1, "id": 11, "path": "/docs/doc11.md", "kind": "text"}]
    assert events[-1][1] == {"model": MODEL, "answer": text}
    assert fake.last.body["stream"] is True


# --- the prompt ------------------------------------------------------------------------

def test_prompt_sets_the_rules_and_numbers_the_sources_best_first(fake, tmp_path):
    fake.script("answer", text="Sí [1].")
    marked = Hit(id=21, kind="text", path="/docs/x.md", score=0.5, snippet="a <mark>BM25</mark> &amp; more",
                 document_id=21, record=None)
    hits = [text_hit(20, "Full passage text, not the snippet.", metadata={"passages": 3}, ordinal=1,
                     title="Ranking"), marked] + HITS
    run(ask(llm_settings(fake, tmp_path), hits, question="¿Qué es BM25?"))
    system, user = fake.last.system, fake.last.user_text
    assert "language of the question" in system
    assert "only" in system and "[1]" in system and "do not contain the answer" in system
    assert "¿Qué es BM25?" in user
    assert "[1] text from /docs/doc20.md, passage 2 of 3 (title: Ranking)\nFull passage text, not the snippet." in user
    assert "[2] text from /docs/x.md\na BM25 & more" in user  # no record: the snippet, without its markup
    assert user.index("[3] text from /docs/doc11.md") < user.index("[4] text from /docs/doc12.md") \
        < user.index("[5] image /photos/img13.jpg (640x480 px JPEG)")
    assert "<mark>" not in user


def test_sources_that_do_not_fit_the_budget_are_left_out_best_first_kept(fake, tmp_path):
    long = [text_hit(i, f"passage {i} " + "x" * 400) for i in (31, 32, 33)]
    short = text_hit(34, "short passage 34")
    fake.script("answer", text="Answer [3].")
    result = run(ask(llm_settings(fake, tmp_path, llm_context_chars=1000), long + [short]))
    user = fake.last.user_text
    assert "passage 31 " in user and "passage 32 " in user
    assert "passage 33 " not in user  # would overflow the budget
    assert "[3] text from /docs/doc34.md\nshort passage 34" in user  # a later one that fits still gets in
    assert [s.hit.id for s in result.sources] == [31, 32, 34]
    assert result.citations == [{"n": 3, "id": 34, "path": "/docs/doc34.md", "kind": "text"}]
    sources_text = user.split("Sources found by the search engine:")[1].split("\n\nQuestion:")[0]
    assert len(sources_text.strip()) <= 1000


def test_a_budget_smaller_than_the_best_passage_cuts_it_rather_than_send_nothing():
    sources = select_sources([text_hit(1, "y" * 5000), text_hit(2, "z" * 5000)], 500)
    assert [s.hit.id for s in sources] == [1] and len(sources[0].text) <= 500 and sources[0].text.endswith("…")


def test_image_sources_describe_exif_and_vision_sends_thumbnails(fake, tmp_path):
    exif = dict(width=4000, height=3000, format="JPEG", taken_at="2021-06-01T12:30:00", make="Canon",
                model="EOS 5D", gps={"lat": 48.8584, "lon": 2.2945})
    hit = image_hit(41, **exif)
    thumb = DataDir(tmp_path).thumb_path(hit.record.content_hash)
    thumb.parent.mkdir(parents=True)
    Image.new("RGB", (32, 24), (200, 30, 30)).save(thumb, format="WEBP")
    hits = [hit, HITS[0]]
    fake.script("answer", text="A photo taken in Paris [1].")

    run(ask(llm_settings(fake, tmp_path, llm_vision=False), hits))
    plain = fake.last.user
    assert isinstance(plain, str)
    assert ("[1] image /photos/img41.jpg (4000x3000 px JPEG, taken 2021-06-01T12:30:00, camera Canon EOS 5D, "
            "GPS 48.8584, 2.2945)") in plain

    run(ask(llm_settings(fake, tmp_path, llm_vision=True), hits))
    parts = fake.last.user
    assert isinstance(parts, list)
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 1
    url = images[0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.size == (32, 24) and decoded.getpixel((5, 5))[0] > 150
    labels = [p["text"] for p in parts if p["type"] == "text"]
    assert any("Image [1]" in t for t in labels) and "GPS 48.8584" in fake.last.user_text


# --- failures never raise and stay within the timeout ----------------------------------

def test_a_server_that_hangs_gives_an_error_within_the_timeout_and_is_hung_up_on(fake, tmp_path):
    fake.script("hang")
    settings = llm_settings(fake, tmp_path, llm_timeout=1.0)
    started = time.monotonic()
    result = run(ask(settings))
    assert time.monotonic() - started < 2.5
    assert result.answer is None and "did not finish the answer within 1 s" in result.error
    assert fake.last.closed.wait(3), "the upstream connection was left open"

    started = time.monotonic()
    events = run(ask_stream(settings))
    assert time.monotonic() - started < 2.5
    assert [k for k, _ in events] == ["error", "done"] and "within 1 s" in events[0][1]
    assert fake.last.closed.wait(3)


def test_a_stream_slower_than_the_timeout_is_cut_off(fake, tmp_path):
    fake.script("answer", text="one two three four five six seven eight nine ten", delay=0.3)
    started = time.monotonic()
    events = run(ask_stream(llm_settings(fake, tmp_path, llm_timeout=1.0)))
    assert time.monotonic() - started < 2.5
    kinds = [k for k, _ in events]
    assert "token" in kinds and kinds[-2:] == ["error", "done"] and events[-1][1]["answer"] is None
    assert fake.last.closed.wait(3)


@pytest.mark.parametrize("kind, params, needle", [
    ("error", {"status": 500}, "answered HTTP 500: scripted failure 500"),
    ("error", {"status": 404}, "answered HTTP 404"),
    ("malformed_json", {}, "malformed response"),
    ("malformed_chunk", {}, "malformed response"),
    ("error_event", {}, "reported an error: scripted mid-stream failure"),
    ("empty", {}, "empty answer"),
])
def test_upstream_failures_become_answer_errors(fake, tmp_path, kind, params, needle):
    fake.script(kind, **params)
    settings = llm_settings(fake, tmp_path)
    if kind not in ("malformed_chunk", "error_event"):  # only streams go wrong there
        result = run(ask(settings))
        assert result.answer is None and result.citations == [] and needle in result.error, result.error
    events = run(ask_stream(settings))
    assert [k for k, _ in events][-2:] == ["error", "done"] and needle in events[-2][1], events
    assert "citations" not in [k for k, _ in events]


def test_a_server_that_is_down_is_a_clear_error(tmp_path):
    port = free_port()  # nothing listens there
    settings = Settings(data_dir=tmp_path, llm_base_url=f"http://127.0.0.1:{port}/v1", llm_model="m",
                        llm_timeout=3, llm_connect_timeout=1)
    result = run(ask(settings))
    assert result.answer is None and result.error.startswith(f"could not reach the LLM server at http://127.0.0.1:{port}/v1")


def test_the_model_is_asked_of_the_server_when_not_configured_and_the_key_is_sent(fake, tmp_path):
    fake.script("answer", text="Fine [1].")
    run(ask(llm_settings(fake, tmp_path, llm_model="", llm_api_key="sk-test")))
    assert any(r.path == "/v1/models" for r in fake.requests)
    assert fake.last.body["model"] == MODEL and fake.last.headers["authorization"] == "Bearer sk-test"


def test_closing_the_stream_early_cancels_the_upstream_request(fake, tmp_path):
    fake.script("drip", delay=0.05)

    async def first_token_then_leave():
        async with Answerer(llm_settings(fake, tmp_path, llm_timeout=30)) as answerer:
            events = answerer.stream(QUESTION, HITS)
            first = await events.__anext__()
            await events.aclose()
            # still inside the loop (whose end would cancel everything anyway) and the client
            closed = await asyncio.to_thread(fake.last.closed.wait, 3)
            return first, closed

    first, closed = run(first_token_then_leave())
    assert first[0] == "token"
    assert closed, "the LLM server kept generating for nobody"


def test_answers_are_off_without_a_base_url(tmp_path):
    with pytest.raises(LLMNotConfiguredError, match="SEARCHD_LLM_BASE_URL"):
        Answerer(Settings(data_dir=tmp_path))


# --- over HTTP and the CLI, with a real index ------------------------------------------

@pytest.fixture(scope="module")
def indexed(request, tmp_path_factory):
    """(data dir, extra CLI flags, engine): the session's demo index when the demo CLIP exists, else
    a small index of sample docs and photos with a random tiny CLIP (text-text works either way)."""
    if (DEMO_CLIP / "open_clip_config.json").exists():
        return request.getfixturevalue("demo_index"), [], request.getfixturevalue("demo_engine")
    from searchd.engine import create_search_engine
    from tests.model_factory import write_random_clip

    root = tmp_path_factory.mktemp("answer-index")
    clip_dir = write_random_clip(root / "clip")
    corpus = root / "corpus"
    shutil.copytree(SAMPLE / "docs", corpus / "docs", ignore=shutil.ignore_patterns("shapes"))
    shutil.copytree(SAMPLE / "images" / "photos", corpus / "photos")
    flags = ["--clip-model", f"local-dir:{clip_dir}"]
    data_dir = root / "data"
    subprocess.run([sys.executable, "-m", "searchd", "index", str(corpus), "--data-dir", str(data_dir),
                    "--models", "demo", "--offline", *flags], check=True, env=cli_env(), cwd=REPO,
                   capture_output=True, timeout=300)
    engine = create_search_engine(Settings(data_dir=data_dir, models="demo", offline=True,
                                           clip_model=f"local-dir:{clip_dir}"))
    request.addfinalizer(engine.close)
    return data_dir, flags, engine


def app_client(indexed, settings: Settings) -> TestClient:
    from searchd.app import create_app

    return TestClient(create_app(settings, indexed[2], warm=False))


def parse_sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if name:
            events.append((name, json.loads("\n".join(data))))
    return events


def test_post_answer_returns_the_answer_citations_and_search_hits(fake, indexed):
    fake.script("answer", text="BM25 is a lexical ranking function [1]. Unrelated [42].")
    with app_client(indexed, llm_settings(fake, indexed[0])) as client:
        searched = client.get("/api/search", params={"q": QUESTION, "mode": "text-text", "k": 4}).json()
        response = client.post("/api/answer", json={"q": QUESTION, "mode": "text-text", "k": 4})
    assert response.status_code == 200, response.text
    out = response.json()
    assert set(out) == {"answer", "answer_error", "citations", "hits", "model", "took_ms"}
    assert out["answer"].startswith("BM25 is") and out["answer_error"] is None and out["model"] == MODEL
    assert out["hits"] == searched["hits"]  # the very shape of /api/search hits
    assert out["hits"][0]["path"].endswith("bm25.md")
    top = out["hits"][0]
    assert out["citations"] == [{"n": 1, "id": top["id"], "path": top["path"], "kind": "text"}]
    assert "BM25" in fake.last.user_text and out["took_ms"] > 0


def test_a_chinese_question_is_answered_in_chinese_from_passages_in_either_language(fake, indexed):
    text = "注意力机制让模型为每个词计算与其他词的相关性 [1]。"
    fake.script("answer", text=text)
    with app_client(indexed, llm_settings(fake, indexed[0])) as client:
        out = client.post("/api/answer", json={"q": "注意力机制是什么？", "mode": "text-text", "k": 4}).json()
    assert out["answer"] == text and out["citations"][0]["path"].endswith("attention-zh.md")
    assert "language of the question" in fake.last.system and "注意力机制是什么？" in fake.last.user_text
    assert "attention-zh.md" in fake.last.user_text


def test_post_answer_streams_hits_tokens_citations_done(fake, indexed):
    text = "BM25 scores keyword matches [1]."
    fake.script("answer", text=text)
    with app_client(indexed, llm_settings(fake, indexed[0])) as client:
        response = client.post("/api/answer", json={"q": QUESTION, "mode": "text-text", "k": 3, "stream": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [n for n, _ in events]
    assert names[0] == "hits" and names[-2:] == ["citations", "done"] and set(names[1:-2]) == {"token"}
    hits = events[0][1]["hits"]
    # the sources are the relevant hits: up to k, none below the relevance floor
    assert 2 <= len(hits) <= 3 and not any(h["weak"] for h in hits)
    assert hits[0]["path"].endswith("bm25.md") and "thumbnail_url" in hits[0]
    assert "".join(d["text"] for n, d in events if n == "token") == text
    assert events[-2][1] == {"citations": [{"n": 1, "id": hits[0]["id"], "path": hits[0]["path"], "kind": "text"}]}
    done = events[-1][1]
    assert set(done) == {"model", "took_ms", "answer"} and done["answer"] == text and done["model"] == MODEL


@pytest.mark.parametrize("kind, needle", [("error", "HTTP 500"), ("hang", "within 1 s")])
def test_an_llm_failure_still_returns_the_hits(fake, indexed, kind, needle):
    fake.script(kind, status=500)
    with app_client(indexed, llm_settings(fake, indexed[0], llm_timeout=1.0)) as client:
        started = time.monotonic()
        out = client.post("/api/answer", json={"q": QUESTION, "k": 3}).json()
        streamed = parse_sse(client.post("/api/answer", json={"q": QUESTION, "k": 3, "stream": True}).text)
        assert time.monotonic() - started < 5
    assert out["answer"] is None and needle in out["answer_error"] and out["citations"] == []
    assert 2 <= len(out["hits"]) <= 3 and not any(h["weak"] for h in out["hits"])
    assert [n for n, _ in streamed] == ["hits", "error", "done"]
    assert needle in streamed[1][1]["answer_error"] and streamed[2][1]["answer"] is None
    assert streamed[0][1]["hits"] == out["hits"]


def test_answers_are_503_when_no_llm_is_configured(indexed):
    settings = Settings(data_dir=indexed[0], models="demo", offline=True)
    with app_client(indexed, settings) as client:
        response = client.post("/api/answer", json={"q": QUESTION})
    assert response.status_code == 503
    assert response.json() == {"error": NOT_CONFIGURED, "status": 503}


@pytest.mark.parametrize("body", [{}, {"q": ""}, {"q": "x" * 1001}, {"q": "x", "k": 0}, {"q": "x", "k": 51},
                                  {"q": "x", "mode": "image-image"}, {"q": "x", "stream": "maybe"}, {"q": "   "}])
def test_bad_bodies_are_400_in_the_error_shape(fake, indexed, body):
    with app_client(indexed, llm_settings(fake, indexed[0])) as client:
        response = client.post("/api/answer", json=body)
        schema = client.get("/schema/openapi.json").json()
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "status"} and response.json()["status"] == 400
    assert "/api/answer" in schema["paths"] and "AnswerIn" in schema["components"]["schemas"]


def test_a_client_that_disconnects_mid_stream_cancels_the_upstream_call(fake, indexed):
    """Through a real server socket: the LLM connection closes when the browser goes away."""
    import uvicorn

    from searchd.app import create_app

    fake.script("drip", delay=0.05)
    settings = llm_settings(fake, indexed[0], llm_timeout=30)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, indexed[2], warm=False), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = []
        with httpx.Client(timeout=10) as client:
            with client.stream("POST", f"http://127.0.0.1:{port}/api/answer",
                               json={"q": QUESTION, "mode": "text-text", "k": 2, "stream": True}) as response:
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        seen.append(line[6:].strip())
                    if seen.count("token") >= 3:
                        break  # the user closed the tab
        assert seen[0] == "hits"
        assert fake.last.closed.wait(5), "the LLM server kept generating for a client that left"
    finally:
        server.should_exit = True
        thread.join(10)


def run_ask(indexed, fake, *args, llm=True):
    from searchd.cli_ask import ask

    flags = ["--data-dir", str(indexed[0]), "--models", "demo", "--offline", *indexed[1]]
    if llm:
        flags += ["--llm-base-url", fake.base_url, "--llm-model", MODEL, "--llm-timeout", "5"]
    env = {k: None for k in os.environ if k.startswith("SEARCHD_")} | OFFLINE_ENV
    return CliRunner().invoke(ask, [*args, *flags], env=env, catch_exceptions=False)


def test_cli_ask_prints_the_streamed_answer_then_numbered_sources(fake, indexed):
    fake.script("answer", text="BM25 ranks by keywords [1].")
    result = run_ask(indexed, fake, QUESTION, "--mode", "text-text", "-k", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "BM25 ranks by keywords [1]."
    assert "sources:" in lines
    sources = lines[lines.index("sources:") + 1:]
    assert 2 <= len(sources) <= 3 and sources[0].startswith("[1] ") and "bm25.md" in sources[0]


def test_cli_ask_json(fake, indexed):
    fake.script("answer", text="BM25 ranks by keywords [1].")
    result = run_ask(indexed, fake, QUESTION, "--mode", "text-text", "-k", "2", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["answer"] == "BM25 ranks by keywords [1]." and out["answer_error"] is None
    assert out["citations"][0]["id"] == out["hits"][0]["id"] and len(out["hits"]) == 2


def test_cli_ask_without_an_llm_says_how_to_set_one(fake, indexed):
    result = run_ask(indexed, fake, QUESTION, llm=False)
    assert result.exit_code != 0 and "SEARCHD_LLM_BASE_URL" in result.output


def test_cli_ask_prints_the_error_and_still_the_sources_when_the_llm_fails(fake, indexed):
    fake.script("malformed_chunk")
    result = run_ask(indexed, fake, QUESTION, "--mode", "text-text", "-k", "2")
    assert result.exit_code == 1
    assert "Partly" in result.output and "error: " in result.output and "malformed response" in result.output
    assert "[1] " in result.output and "[2] " in result.output


def test_ask_is_a_searchd_command():
    """Also as `python -m searchd.cli`, where cli.py runs as __main__ and cli_ask imports it back."""
    from searchd.cli import cli

    assert "ask" in cli.commands
    proc = subprocess.run([sys.executable, "-m", "searchd", "ask", "--help"], capture_output=True, text=True,
                          env=cli_env(), cwd=REPO, timeout=60)
    assert proc.returncode == 0 and "QUESTION" in proc.stdout, proc.stderr
