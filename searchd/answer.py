"""LLM answers with citations, written by an OpenAI-compatible server from search hits.

The search hits become numbered sources ``[1]..[n]`` (best first, within a budget of
characters); the LLM (LocalAI, llama.cpp server, Ollama, vLLM, OpenAI...) is asked to
answer briefly from them only and to cite them as ``[n]``; the citations in its answer
are mapped back to the hits. Whatever goes wrong upstream (server down, too slow, an
HTTP error, malformed output, an empty answer) becomes ``answer_error``, a sentence
saying what happened, within ``llm_timeout``: nothing raises out of here.

An edge module: it knows the OpenAI wire protocol but no web framework.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import anyio
import httpx
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from indexer.datadir import DataDir
from indexer.errors import SearchdError
from searchd.engine import Hit
from searchd.settings import Settings

NOT_CONFIGURED = "LLM answers are off; set SEARCHD_LLM_BASE_URL"
NO_SOURCES = "the search found nothing to answer from"
EMPTY_ANSWER = "the LLM returned an empty answer"

#: most search hits one question may use as sources
MAX_ANSWER_K = 50
#: answers are asked to be brief; this caps a model that will not stop
MAX_TOKENS = 512
TEMPERATURE = 0.2
#: each picture costs a vision model hundreds of tokens; the best few are enough
MAX_VISION_IMAGES = 4
#: the prompt line of a source that had to be cut to fit the budget ends with this
ELLIPSIS = "…"

SYSTEM_PROMPT = (
    "You answer questions about a person's own files using only the numbered sources that "
    "their search engine found. Rules:\n"
    "- Answer briefly: a few sentences at most.\n"
    "- Use only facts stated in the sources; never add outside knowledge.\n"
    "- Cite the sources you use with their numbers in square brackets right after the claim, "
    "like [1] or [2][3]. Example: \"The index is rebuilt nightly [2].\"\n"
    "- If the sources do not contain the answer, say plainly that they do not; do not guess.\n"
    "- Answer in the language of the question, even when the sources are in another language."
)


class LLMNotConfiguredError(SearchdError):
    """Answers were asked for but no LLM server is configured."""

    status = 503

    def __init__(self, message: str = NOT_CONFIGURED):
        super().__init__(message)


@dataclass
class Source:
    """One hit as the LLM sees it: number ``n`` in the prompt."""

    n: int
    hit: Hit
    text: str                      # the block as it appears in the prompt
    image: bytes | None = None     # a thumbnail, when llm_vision is on
    image_type: str = "image/jpeg"

    def citation(self) -> dict[str, Any]:
        return {"n": self.n, "id": self.hit.id, "path": self.hit.path, "kind": self.hit.kind}


@dataclass
class Prompt:
    messages: list[dict[str, Any]]
    sources: list[Source]


@dataclass
class AnswerResult:
    answer: str | None
    citations: list[dict[str, Any]]
    model: str | None
    error: str | None = None
    sources: list[Source] = field(default_factory=list)


# --- citations -------------------------------------------------------------------------

# [1], [1, 2], [1-3], [1][2]; full-width brackets too (CJK answers)
_NUMBER_LIST = r"\s*\d{1,4}(?:\s*[-–]\s*\d{1,4})?(?:\s*[,;、，]\s*\d{1,4}(?:\s*[-–]\s*\d{1,4})?)*\s*"
_CITE = re.compile(rf"[\[［【]({_NUMBER_LIST})[\]］】]")


def cited_numbers(text: str) -> list[int]:
    """Every source number cited in ``text``, ascending, once each."""
    found: set[int] = set()
    for match in _CITE.finditer(text or ""):
        for part in re.split(r"[,;、，]", match.group(1)):
            bounds = [int(b) for b in re.split(r"[-–]", part) if b.strip()]
            if len(bounds) == 2 and 0 <= bounds[1] - bounds[0] <= 50:
                found.update(range(bounds[0], bounds[1] + 1))
            elif bounds:
                found.add(bounds[0])
    return sorted(found)


def citations_for(text: str, sources: Sequence[Source]) -> list[dict[str, Any]]:
    """Citations of ``text`` that refer to a real source; numbers that do not are dropped."""
    by_number = {s.n: s for s in sources}
    return [by_number[n].citation() for n in cited_numbers(text) if n in by_number]


# --- the prompt ------------------------------------------------------------------------

def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _strip_marks(snippet: str) -> str:
    return html.unescape(re.sub(r"</?mark>", "", snippet))


def describe_image(hit: Hit) -> str:
    """Path, size and EXIF facts of an image hit, as one line of the prompt."""
    rec = hit.record
    meta = (rec.metadata if rec else None) or {}
    facts = []
    if meta.get("width") and meta.get("height"):
        facts.append(f"{meta['width']}x{meta['height']} px" + (f" {meta['format']}" if meta.get("format") else ""))
    taken = meta.get("taken_at") or (rec.taken_at if rec else None)
    if taken:
        facts.append(f"taken {taken}")
    camera = " ".join(str(v) for v in (meta.get("make"), meta.get("model")) if v)
    if camera:
        facts.append(f"camera {camera}")
    gps = meta.get("gps")
    if isinstance(gps, dict) and gps.get("lat") is not None and gps.get("lon") is not None:
        facts.append(f"GPS {gps['lat']}, {gps['lon']}")
    line = f"image {hit.path}" + (f" ({', '.join(facts)})" if facts else "")
    nearby = []
    if rec is not None and rec.title:
        nearby.append(rec.title)
    for key in ("description", "caption", "alt", "comment"):
        if isinstance(meta.get(key), str) and meta[key].strip():
            nearby.append(meta[key])
    if rec is not None and rec.text:
        nearby.append(rec.text)
    if nearby:
        line += "\nText with it: " + _plain(" / ".join(dict.fromkeys(nearby)))
    return line


def describe_passage(hit: Hit) -> tuple[str, str]:
    """(header, body) of a text hit: the full passage, plain text."""
    rec = hit.record
    body = rec.text if rec is not None and rec.text else _strip_marks(hit.snippet)
    header = f"text from {hit.path}"
    if rec is not None:
        meta = rec.metadata or {}
        if meta.get("passages", 1) > 1:
            header += f", passage {rec.ordinal + 1} of {meta['passages']}"
        if rec.title:
            header += f" (title: {_plain(rec.title)})"
    return header, _plain(body)


def _load_thumbnail(path: Path) -> tuple[bytes, str] | None:
    """A thumbnail as JPEG: WebP is what we store, but llama.cpp (stb_image) and some other
    servers only decode JPEG and PNG, so it is re-encoded; the raw WebP if that fails."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            out = io.BytesIO()
            im.convert("RGB").save(out, format="JPEG", quality=85)
            return out.getvalue(), "image/jpeg"
    except Exception:
        return data, "image/webp"


def select_sources(hits: Sequence[Hit], budget: int, *, vision: bool = False,
                   data_dir: DataDir | None = None) -> list[Source]:
    """Number the hits that fit ``budget`` characters, best first.

    A source that does not fit is left out and the next (shorter) ones still get their
    chance; only when none of them fits is the best one cut to the budget, so that a tiny
    budget still gives the LLM something to read.
    """
    blocks = []
    for hit in hits:
        if hit.kind == "image":
            blocks.append((hit, describe_image(hit)))
        else:
            header, body = describe_passage(hit)
            blocks.append((hit, f"{header}\n{body}"))
    chosen: list[tuple[Hit, str]] = []
    used = 0
    for hit, block in blocks:
        size = len(block) + len(f"[{len(chosen) + 1}] ")
        if used + size <= budget:
            chosen.append((hit, block))
            used += size
    if not chosen and blocks and budget > 80:
        hit, block = blocks[0]
        chosen.append((hit, block[:budget - len("[1] ") - len(ELLIPSIS)].rstrip() + ELLIPSIS))
    sources = []
    images = 0
    for n, (hit, block) in enumerate(chosen, start=1):
        source = Source(n=n, hit=hit, text=f"[{n}] {block}")
        if vision and hit.kind == "image" and images < MAX_VISION_IMAGES and data_dir and hit.record:
            thumb = _load_thumbnail(data_dir.thumb_path(hit.record.content_hash))
            if thumb is not None:
                source.image, source.image_type = thumb
                source.text += f"\n(The picture is attached as image [{n}].)"
                images += 1
        sources.append(source)
    return sources


def build_messages(question: str, sources: Sequence[Source]) -> list[dict[str, Any]]:
    intro = "Sources found by the search engine:\n\n" + "\n\n".join(s.text for s in sources)
    ask = (f"\n\nQuestion: {question.strip()}\n\n"
           "Answer briefly from the sources only, cite them as [n], and answer in the language of the question.")
    pictures = [s for s in sources if s.image is not None]
    if not pictures:
        user: Any = intro + ask
    else:
        user = [{"type": "text", "text": intro}]
        for s in pictures:
            url = f"data:{s.image_type};base64,{base64.b64encode(s.image).decode('ascii')}"
            user.append({"type": "text", "text": f"\nImage [{s.n}]:"})
            user.append({"type": "image_url", "image_url": {"url": url}})
        user.append({"type": "text", "text": ask})
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


# --- talking to the server -------------------------------------------------------------

class MalformedResponseError(Exception):
    """The server answered, but not in the chat-completions format."""


def _completion_text(completion: Any) -> tuple[str, str | None]:
    if not isinstance(completion, ChatCompletion):
        raise MalformedResponseError(f"expected a chat completion, got {type(completion).__name__}")
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise MalformedResponseError("the completion has no choices")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None) if message is not None else None
    if content is not None and not isinstance(content, str):
        raise MalformedResponseError("the message content is not text")
    return content or "", getattr(completion, "model", None)


def _json_completion_text(raw: bytes) -> tuple[str, str | None]:
    data = json.loads(raw)
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise MalformedResponseError("the completion has no choices with a message") from None
    if content is not None and not isinstance(content, str):
        raise MalformedResponseError("the message content is not text")
    model = data.get("model") if isinstance(data.get("model"), str) else None
    return content or "", model


def _chunk_text(chunk: Any) -> str:
    if not isinstance(chunk, ChatCompletionChunk):
        raise MalformedResponseError(f"expected a chat completion chunk, got {type(chunk).__name__}")
    choices = getattr(chunk, "choices", None)
    if choices is None:
        raise MalformedResponseError("a streamed chunk has no choices")
    if not isinstance(choices, list):
        raise MalformedResponseError("a streamed chunk's choices are not a list")
    if not choices:
        return ""  # e.g. a final usage-only chunk
    delta = getattr(choices[0], "delta", None)
    content = getattr(delta, "content", None) if delta is not None else None
    if content is not None and not isinstance(content, str):
        raise MalformedResponseError("a streamed chunk's content is not text")
    return content or ""


class Answerer:
    """Asks the configured LLM server for answers. One per request or per app; close it."""

    def __init__(self, settings: Settings, *, data_dir: DataDir | None = None):
        if not settings.llm_enabled:
            raise LLMNotConfiguredError()
        self.settings = settings
        self.data_dir = data_dir or DataDir(settings.data_dir)
        self.base_url = settings.llm_base_url.rstrip("/")
        self._client: AsyncOpenAI | None = None
        self._model: str | None = settings.llm_model or None

    @property
    def client(self) -> AsyncOpenAI:
        if self._client is None:
            s = self.settings
            self._client = AsyncOpenAI(
                base_url=self.base_url, api_key=s.llm_api_key or "not-needed",
                timeout=httpx.Timeout(s.llm_timeout, connect=min(s.llm_connect_timeout, s.llm_timeout)),
                max_retries=0)  # a retry would blow the user's time budget; they can ask again
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def __aenter__(self) -> "Answerer":
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.aclose()

    # -- prompt ------------------------------------------------------------------------

    def prepare(self, question: str, hits: Sequence[Hit]) -> Prompt:
        sources = select_sources(hits, self.settings.llm_context_chars, vision=self.settings.llm_vision,
                                 data_dir=self.data_dir)
        return Prompt(messages=build_messages(question, sources), sources=sources)

    async def model_name(self) -> str:
        """The configured model, else the first the server lists (llama.cpp and LocalAI serve one)."""
        if self._model is None:
            try:
                page = await self.client.models.list()
                first = page.data[0].id if page.data else None
            except (openai.APIStatusError, openai.APIResponseValidationError, AttributeError, IndexError,
                    TypeError, ValueError):
                first = None
            self._model = first if isinstance(first, str) and first else "default"
        return self._model

    def describe_error(self, exc: BaseException) -> str:
        """What went wrong, in a sentence a user can act on."""
        s = self.settings
        where = f"the LLM server at {self.base_url}"
        if isinstance(exc, (TimeoutError, openai.APITimeoutError)):
            cause = exc.__cause__
            if cause is not None and "Connect" in type(cause).__name__:
                return f"{where} did not accept a connection within {min(s.llm_connect_timeout, s.llm_timeout):g} s"
            return f"{where} did not finish the answer within {s.llm_timeout:g} s (SEARCHD_LLM_TIMEOUT)"
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            detail = f": {cause}" if cause is not None and str(cause) else ""
            return f"could not reach {where}{detail}"
        if isinstance(exc, openai.APIStatusError):
            message = _error_message(exc)
            hint = ""
            if exc.status_code == 404:
                hint = " (check SEARCHD_LLM_BASE_URL, which usually ends in /v1, and SEARCHD_LLM_MODEL)"
            elif exc.status_code in (401, 403):
                hint = " (check SEARCHD_LLM_API_KEY)"
            return f"{where} answered HTTP {exc.status_code}: {message}{hint}"
        if isinstance(exc, (MalformedResponseError, openai.APIResponseValidationError, json.JSONDecodeError,
                            ValueError, TypeError, AttributeError, KeyError)):
            return f"{where} sent a malformed response: {_short(str(exc) or type(exc).__name__)}"
        if isinstance(exc, openai.APIError):  # e.g. an {"error": ...} event in the middle of a stream
            return f"{where} reported an error: {_short(exc.message or str(exc))}"
        return f"the request to {where} failed: {type(exc).__name__}: {_short(str(exc))}"

    def _request(self, prompt: Prompt, model: str, stream: bool) -> dict[str, Any]:
        return {"model": model, "messages": prompt.messages, "stream": stream, "max_tokens": MAX_TOKENS,
                "temperature": TEMPERATURE}

    # -- answering ---------------------------------------------------------------------

    async def answer(self, question: str, hits: Sequence[Hit]) -> AnswerResult:
        """The whole answer at once; never raises for an upstream failure."""
        prompt = self.prepare(question, hits)
        if not prompt.sources:
            return AnswerResult(None, [], None, NO_SOURCES, [])
        model: str | None = None
        try:
            async with asyncio.timeout(self.settings.llm_timeout):
                model = await self.model_name()
                completion = await self.client.chat.completions.create(**self._request(prompt, model, False))
            text, served_by = _completion_text(completion)
            model = served_by or model
        except Exception as exc:
            return AnswerResult(None, [], model, self.describe_error(exc), prompt.sources)
        text = text.strip()
        if not text:
            return AnswerResult(None, [], model, EMPTY_ANSWER, prompt.sources)
        return AnswerResult(text, citations_for(text, prompt.sources), model, None, prompt.sources)

    async def stream(self, question: str, hits: Sequence[Hit],
                     prompt: Prompt | None = None) -> AsyncIterator[tuple[str, Any]]:
        """The answer as it is written: ``("token", text)``... then ``("citations", [...])`` and
        ``("done", {"model", "answer"})``; on failure ``("error", message)`` then ``done``.

        The upstream call runs in its own task under one deadline; closing this iterator
        early (a client that went away) cancels it, which closes the upstream connection.
        """
        prompt = prompt or self.prepare(question, hits)
        if not prompt.sources:
            yield "error", NO_SOURCES
            yield "done", {"model": None, "answer": None}
            return
        queue: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(self._produce(prompt, queue))
        try:
            while True:
                kind, payload = await queue.get()
                yield kind, payload
                if kind == "done":
                    break
        finally:
            if not task.done():
                task.cancel()
            # wait (briefly, shielded from the cancellation that brought us here) for the
            # task to close the upstream response, so the server stops generating now
            with anyio.CancelScope(shield=True):
                await asyncio.wait({task}, timeout=5)

    async def _produce(self, prompt: Prompt, queue: asyncio.Queue) -> None:
        parts: list[str] = []
        model: str | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.settings.llm_timeout):
                model = await self.model_name()
                upstream = await self.client.chat.completions.create(**self._request(prompt, model, True))
                try:
                    if "json" in upstream.response.headers.get("content-type", "").lower():
                        # the server ignored "stream": true and sent the whole completion
                        text, served_by = _json_completion_text(await upstream.response.aread())
                        model = served_by or model
                        if text:
                            parts.append(text)
                            queue.put_nowait(("token", text))
                    else:
                        async for chunk in upstream:
                            text = _chunk_text(chunk)
                            model = getattr(chunk, "model", None) or model
                            if text:
                                parts.append(text)
                                queue.put_nowait(("token", text))
                finally:
                    await upstream.close()
        except Exception as exc:
            error = self.describe_error(exc)
        answer = "".join(parts).strip()
        if error is None and not answer:
            error = EMPTY_ANSWER
        if error is not None:
            queue.put_nowait(("error", error))
            queue.put_nowait(("done", {"model": model, "answer": None}))
        else:
            queue.put_nowait(("citations", citations_for(answer, prompt.sources)))
            queue.put_nowait(("done", {"model": model, "answer": answer}))


def _short(text: str, limit: int = 300) -> str:
    text = _plain(text)
    return text if len(text) <= limit else text[:limit - 1] + ELLIPSIS


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return _short(inner["message"])
        if isinstance(inner, str):
            return _short(inner)
    if isinstance(body, str) and body.strip():
        return _short(body)
    try:
        text = exc.response.text
    except Exception:
        text = ""
    return _short(text) if text.strip() else (exc.response.reason_phrase or "error")
