"""A small but real OpenAI-compatible HTTP server for tests, on a free 127.0.0.1 port.

It speaks the wire format a real server does (``POST /v1/chat/completions`` as a JSON
response or, with ``"stream": true``, as SSE chunks ending in ``data: [DONE]``; ``GET
/v1/models``) and plays one scripted behaviour at a time:

    answer          the scripted text (streamed word by word, ``delay`` s apart)
    empty           an answer with no text
    error           HTTP ``status`` with an OpenAI-style error body
    malformed_json  200, application/json, a body that is not JSON
    malformed_chunk a good chunk, then ``data: {not json``
    error_event     a good chunk, then ``data: {"error": {...}}`` (as llama.cpp does mid-stream)
    hang            reads the request and never answers
    drip            streams a word every ``delay`` s, forever

Every request is recorded (``requests``), with an event that is set when the server sees
the client close the connection before it finished (``Received.closed``).
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "fake-model"


@dataclass
class Behaviour:
    kind: str = "answer"
    text: str = "The answer [1]."
    delay: float = 0.0
    status: int = 500


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    closed: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def messages(self) -> list[dict]:
        return self.body.get("messages", []) if isinstance(self.body, dict) else []

    @property
    def system(self) -> str:
        return next((m["content"] for m in self.messages if m["role"] == "system"), "")

    @property
    def user(self) -> Any:
        return next((m["content"] for m in self.messages if m["role"] == "user"), "")

    @property
    def user_text(self) -> str:
        content = self.user
        if isinstance(content, str):
            return content
        return "".join(part.get("text", "") for part in content if part.get("type") == "text")


class _ClientGone(Exception):
    pass


class FakeOpenAI:
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.requests: list[Received] = []
        self._stopping = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: a close is unambiguous

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests.append(Received("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, None))
                if self.path.rstrip("/") == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model",
                                                                 "owned_by": "tests"}]})
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                received = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                fake.requests.append(received)
                try:
                    if self.path.rstrip("/") != "/v1/chat/completions":
                        self._json(404, {"error": {"message": f"no route {self.path}"}})
                    else:
                        fake._play(self, received, fake.behaviour)
                except _ClientGone:
                    received.closed.set()
                except (BrokenPipeError, ConnectionResetError):
                    received.closed.set()
                finally:
                    received.finished.set()

            def _json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)

    # -- control ---------------------------------------------------------------------

    def start(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def script(self, kind: str = "answer", **params: Any) -> "FakeOpenAI":
        self.behaviour = Behaviour(kind=kind, **params)
        self.requests.clear()
        return self

    @property
    def chat_requests(self) -> list[Received]:
        return [r for r in self.requests if r.path.rstrip("/") == "/v1/chat/completions"]

    @property
    def last(self) -> Received:
        return self.chat_requests[-1]

    # -- behaviours ------------------------------------------------------------------

    def _wait(self, handler: BaseHTTPRequestHandler, seconds: float | None) -> None:
        """Sleep, noticing a client that closes the connection meanwhile."""
        deadline = None if seconds is None else time.monotonic() + seconds
        conn: socket.socket = handler.connection
        while not self._stopping.is_set():
            step = 0.02 if deadline is None else max(0.0, min(0.02, deadline - time.monotonic()))
            readable, _, _ = select.select([conn], [], [], step)
            if readable:
                try:
                    if not conn.recv(1, socket.MSG_PEEK):
                        raise _ClientGone()
                except (ConnectionResetError, OSError):
                    raise _ClientGone() from None
            if deadline is not None and time.monotonic() >= deadline:
                return
        raise _ClientGone()  # shutting down

    def _play(self, h: BaseHTTPRequestHandler, received: Received, b: Behaviour) -> None:
        body = received.body if isinstance(received.body, dict) else {}
        stream = bool(body.get("stream"))
        model = body.get("model") or MODEL
        if b.kind == "hang":
            self._wait(h, None)
            return
        if b.kind == "error":
            h._json(b.status, {"error": {"message": f"scripted failure {b.status}", "type": "server_error"}})
            return
        if b.kind == "malformed_json":
            data = b'{"id": "x", "choices": [ this is not json'
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        text = "" if b.kind == "empty" else b.text
        if not stream:
            if b.delay:
                self._wait(h, b.delay)
            h._json(200, completion(text, model))
            return
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.end_headers()
        send = lambda payload: self._send_event(h, payload)  # noqa: E731
        send(chunk({"role": "assistant", "content": ""}, model))
        if b.kind == "drip":
            i = 0
            while True:
                self._wait(h, b.delay or 0.05)
                send(chunk({"content": f"word{i} "}, model))
                i += 1
        if b.kind == "error_event":
            send(chunk({"content": "Partly "}, model))
            send({"error": {"message": "scripted mid-stream failure", "type": "server_error"}})
            return
        if b.kind == "malformed_chunk":
            send(chunk({"content": "Partly "}, model))
            h.wfile.write(b"data: {not json\n\n")
            send(chunk({"content": "more"}, model))
            h.wfile.write(b"data: [DONE]\n\n")
            return
        for token in re.findall(r"\S+\s*|\s+", text):
            if b.delay:
                self._wait(h, b.delay)
            send(chunk({"content": token}, model))
        send(chunk({}, model, finish="stop"))
        h.wfile.write(b"data: [DONE]\n\n")

    @staticmethod
    def _send_event(h: BaseHTTPRequestHandler, payload: dict) -> None:
        h.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        h.wfile.flush()


def completion(text: str, model: str = MODEL) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def chunk(delta: dict, model: str = MODEL, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
