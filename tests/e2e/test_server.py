"""A real `searchd serve` process on a free port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import REPO, ServerProcess, cli_env
from tests.shapes import write_shape


def test_every_mode_over_http(served, tmp_path):
    with httpx.Client(base_url=served, timeout=30) as http:
        r = http.get("/api/search", params={"q": "a red circle", "mode": "text-image", "k": 3})
        assert r.status_code == 200 and "red-circle" in r.json()["hits"][0]["path"]
        r = http.get("/api/search", params={"q": "turning spoken audio into written words", "mode": "text-text"})
        assert r.json()["hits"][0]["path"].endswith("whisper.md")
        r = http.get("/api/search", params={"q": "a red circle", "mode": "text-all", "k": 4})
        assert {h["kind"] for h in r.json()["hits"]} == {"image", "text"}
        square = write_shape(tmp_path, "blue", "square", seed=8080).read_bytes()
        for mode, check in (("image-image", lambda h: "blue-square" in h[0]["path"]),
                            ("image-text", lambda h: h[0]["path"].endswith("blue-square.md")),
                            ("image-all", lambda h: any("blue-square" in x["path"] for x in h[:2]))):
            r = http.post("/api/search/image", params={"mode": mode, "k": 4},
                          files={"file": ("q.png", square, "image/png")})
            assert r.status_code == 200 and check(r.json()["hits"]), (mode, r.json()["hits"])
        assert http.get("/api/status").json()["documents"]["image"] >= 48
        assert http.get("/api/search", params={"q": "x", "k": 0}).json()["status"] == 400
        page = http.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_server_binds_loopback_by_default(served):
    assert served.startswith("http://127.0.0.1:")


def test_queries_keep_succeeding_while_another_process_reindexes(demo_index_copy, tmp_path):
    server = ServerProcess(demo_index_copy)
    failures: list[str] = []
    answered = 0
    stop = threading.Event()

    def query_loop():
        nonlocal answered
        with httpx.Client(base_url=server.url, timeout=60) as http:
            while not stop.is_set():
                try:
                    r = http.get("/api/search", params={"q": "a red circle", "mode": "text-all", "k": 5})
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    answered += 1
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                time.sleep(0.05)

    try:
        generation = httpx.get(server.url + "/api/status").json()["generation"]
        new = tmp_path / "new-shapes"
        for i in range(12):
            write_shape(new, ["purple", "orange", "green"][i % 3], "star", seed=7000 + i)
        worker = threading.Thread(target=query_loop)
        worker.start()
        subprocess.run([sys.executable, "-m", "searchd", "index", str(new), "--data-dir", str(demo_index_copy)],
                       env=cli_env(), cwd=REPO, check=True, capture_output=True, timeout=300)
        deadline = time.monotonic() + 30
        found = []
        while time.monotonic() < deadline and not found:
            found = httpx.get(server.url + "/api/search", params={
                "q": "a purple star", "mode": "text-image", "k": 5, "path_prefix": str(new)}).json()["hits"]
            time.sleep(0.2)
        stop.set()
        worker.join()
        assert found and all(h["path"].startswith(str(new)) for h in found)
        assert httpx.get(server.url + "/api/status").json()["generation"] > generation
        assert failures == [] and answered > 0
    finally:
        stop.set()
        server.stop()


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _maps_index(pid: int, index_file: Path) -> bool:
    try:
        return str(index_file) in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_several_processes_answer_and_share_the_mapped_indexes(demo_index):
    index_file = demo_index / "indexes" / "clip-image.faiss"
    server = ServerProcess(demo_index, extra_args=("--processes", "2"))
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline:  # each worker maps the index once it has warmed up
            workers = [pid for pid in _children(server.proc.pid) if _maps_index(pid, index_file)]
            if len(workers) == 2:
                break
            time.sleep(0.5)
        assert len(workers) == 2, "two worker processes should map the same index file"
        for i in range(8):
            hits = httpx.get(server.url + "/api/search", params={"q": f"a red circle {i}", "mode": "text-image",
                                                                  "k": 3}).json()["hits"]
            assert "red-circle" in hits[0]["path"]
    finally:
        server.stop()
    time.sleep(1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "the workers end with the server"


def test_a_chinese_query_sent_raw_in_the_url_is_answered(served):
    # what `curl 'http://127.0.0.1:8000/api/search?q=语言模型'` sends: UTF-8, not %-encoded
    host, port = served.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall("GET /api/search?q=语言模型&mode=text-text&k=5 HTTP/1.1\r\nHost: x\r\n"
                     "Connection: close\r\n\r\n".encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw[:300]
    hits = json.loads(body)["hits"]
    encoded = httpx.get(served + "/api/search", params={"q": "语言模型", "mode": "text-text", "k": 5}, timeout=60)
    assert hits and [h["path"] for h in hits] == [h["path"] for h in encoded.json()["hits"]]
