"""Raw UTF-8 in a request line reaches the app percent-encoded; nothing else is touched.

A real uvicorn server on a free port with a small ASGI app that echoes what it got."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import uvicorn

from searchd.http_protocol import Utf8TargetProtocol, quote_high_bytes
from tests.conftest import free_port


async def echo(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    out = json.dumps({"path": scope["path"], "query": scope["query_string"].decode("ascii"),
                      "body": body.decode("utf-8")}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


@pytest.fixture(scope="module")
def port():
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(echo, host="127.0.0.1", port=port, http=Utf8TargetProtocol,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def exchange(port: int, *chunks: bytes, responses: int = 1) -> list[tuple[int, dict]]:
    """Send ``chunks`` (with a pause between them) on one connection; read the responses."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
            time.sleep(0.05)
        data = b""
        out = []
        while len(out) < responses:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            while b"\r\n\r\n" in data:
                head, rest = data.split(b"\r\n\r\n", 1)
                length = int(dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:]
                                  if b": " in line).get(b"content-length", b"0"))
                if len(rest) < length:
                    break
                status = int(head.split(b" ")[1])
                out.append((status, json.loads(rest[:length]) if status == 200 else {}))
                data = rest[length:]
    return out


def get(target: str, extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def test_quote_high_bytes():
    assert quote_high_bytes("q=语".encode()) == b"q=%E8%AF%AD"
    assert quote_high_bytes(b"q=plain%20ascii") == b"q=plain%20ascii"


def test_a_raw_utf8_query_is_answered(port):
    [(status, got)] = exchange(port, get("/api/search?q=语言模型&k=3"))
    assert status == 200 and got["query"] == "q=%E8%AF%AD%E8%A8%80%E6%A8%A1%E5%9E%8B&k=3"
    [(status, got)] = exchange(port, get("/文档/说明.md"))
    assert status == 200 and got["path"] == "/文档/说明.md"


def test_a_request_line_split_inside_a_character(port):
    raw = get("/s?q=语言模型")
    cut = raw.index("言".encode()) + 1  # in the middle of its three bytes
    [(status, got)] = exchange(port, raw[:cut], raw[cut:])
    assert status == 200 and got["query"] == "q=%E8%AF%AD%E8%A8%80%E6%A8%A1%E5%9E%8B"


def test_keep_alive_requests_and_bodies_are_left_alone(port):
    body = "中文正文\nGET /不是请求行 HTTP/1.1\r\n".encode()
    post = (f"POST /p?q=模型 HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    responses = exchange(port, b"\r\n" + post, body, get("/s?q=第二"), responses=2)
    assert [s for s, _ in responses] == [200, 200]
    assert responses[0][1]["body"] == body.decode() and responses[0][1]["query"] == "q=%E6%A8%A1%E5%9E%8B"
    assert responses[1][1]["query"] == "q=%E7%AC%AC%E4%BA%8C"
    [(status, got)] = exchange(port, post + body)  # head and body in one chunk
    assert status == 200 and got["body"] == body.decode()
