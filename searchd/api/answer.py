"""POST /api/answer: search, then an LLM answer with citations to the hits.

Non-streamed: one JSON object. Streamed (``"stream": true``): ``text/event-stream`` with
``hits`` first, then ``token``..., ``citations`` and ``done``; on an LLM failure ``error``
then ``done``. The hits always come back, whatever the LLM does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, AsyncIterator, Callable, Literal

import anyio
import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from msgspec import Meta

from searchd.answer import MAX_ANSWER_K, Answerer, LLMNotConfiguredError
from searchd.api.presenters import hit_out
from searchd.api.schemas import ErrorOut, HitOut
from searchd.engine import MAX_QUERY_CHARS, Hit, Query, SearchEngine
from searchd.settings import Settings


class AnswerIn(msgspec.Struct):
    """What to ask. `mode` picks what is searched for sources (any text-* mode)."""

    q: Annotated[str, Meta(min_length=1, max_length=MAX_QUERY_CHARS, description="The question.")]
    mode: Annotated[Literal["text-all", "text-text", "text-image"],
                    Meta(description="What to search for sources: text-all, text-text or text-image.")] = "text-all"
    k: Annotated[int, Meta(ge=1, le=MAX_ANSWER_K, description="Search hits to consider as sources (1-50).")] = 8
    stream: Annotated[bool, Meta(description="Stream the answer as server-sent events.")] = False


@dataclass
class CitationOut:
    n: int
    id: int
    path: str
    kind: str


@dataclass
class AnswerOut:
    answer: str | None
    answer_error: str | None
    citations: list[CitationOut]
    hits: list[HitOut]
    model: str | None
    took_ms: float


class _EventStream(ServerSentEvent):
    """A ServerSentEvent that keeps its media type: Litestar 2.x lets the handler's (JSON,
    from the AnswerOut annotation) override a streamed response's own."""

    def to_asgi_response(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        kwargs["media_type"] = "text/event-stream"
        return super().to_asgi_response(*args, **kwargs)


def _event(name: str, payload: dict[str, Any]) -> ServerSentEventMessage:
    return ServerSentEventMessage(event=name, data=msgspec.json.encode(payload).decode())


class AnswerController(Controller):
    path = "/api/answer"
    tags = ["answer"]

    @post("/", status_code=200, summary="Answer a question from the search hits, with citations",
          description="Searches (`mode`, `k`), then asks the configured LLM to answer briefly from the hits, "
                      "citing them as [n]. `citations` map each [n] to a hit. With `\"stream\": true` the "
                      "response is `text/event-stream`: `hits` {hits}, then `token` {text}..., `citations` "
                      "{citations}, `done` {model, took_ms, answer}; on an LLM failure `error` {answer_error} "
                      "then `done`. 503 when no LLM is configured.",
          responses={503: ResponseSpec(ErrorOut, description="No LLM is configured (SEARCHD_LLM_BASE_URL), "
                                                             "or nothing is indexed yet")})
    async def answer(self, data: JSONBody[AnswerIn], engine: NamedDependency[SearchEngine],
                     settings: NamedDependency[Settings]) -> AnswerOut:
        started = time.perf_counter()
        if not settings.llm_enabled:
            raise LLMNotConfiguredError()
        query = Query(mode=data.mode, text=data.q, k=data.k)
        result = await anyio.to_thread.run_sync(engine.search, query)
        hits = result.hits
        hits_out = [hit_out(h) for h in hits]

        def took() -> float:
            return round((time.perf_counter() - started) * 1000, 2)

        if data.stream:
            return _EventStream(self._events(settings, data.q, hits, hits_out, took),  # type: ignore[return-value]
                                headers={"X-Accel-Buffering": "no"})
        async with Answerer(settings) as answerer:
            outcome = await answerer.answer(data.q, hits)
        return AnswerOut(answer=outcome.answer, answer_error=outcome.error,
                         citations=[CitationOut(**c) for c in outcome.citations], hits=hits_out,
                         model=outcome.model, took_ms=took())

    @staticmethod
    async def _events(settings: Settings, question: str, hits: list[Hit], hits_out: list[HitOut],
                      took: Callable[[], float]) -> AsyncIterator[ServerSentEventMessage]:
        yield _event("hits", {"hits": hits_out})
        async with Answerer(settings) as answerer:
            async for kind, payload in answerer.stream(question, hits):
                if kind == "token":
                    yield _event("token", {"text": payload})
                elif kind == "citations":
                    yield _event("citations", {"citations": payload})
                elif kind == "error":
                    yield _event("error", {"answer_error": payload})
                elif kind == "done":
                    yield _event("done", {"model": payload["model"], "took_ms": took(),
                                          "answer": payload["answer"]})
