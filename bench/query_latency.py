"""Query latency of a real `searchd serve`, and an in-process FAISS index comparison.

    python bench/query_latency.py                       # --sample: sample_data/ with the demo models
    python bench/query_latency.py --items 100000        # a generated 100k-item collection, served
    python bench/query_latency.py --synthetic 1000000   # FAISS Flat / IVF / SQ8 / PQ / HNSW, no server
    python bench/query_latency.py --data-dir D --models default   # an existing data dir, served

Served parts (--sample, --items, --data-dir) start `searchd serve` on a free port of
127.0.0.1, warm it up, then send --requests sequential requests per mode (text-image,
text-text, text-all by GET /api/search; image-image, image-text, image-all by POST
/api/search/image). Two passes per mode, because the server keeps query embeddings in an
LRU cache:

  cold  every query is new: a counter word is appended to the text ("a red circle 17"),
        and each uploaded image has a unique one-pixel change (checked, client-side,
        to survive the server's decode), so the encoder runs every time;
  warm  a small rotating set of queries, each sent once beforehand, so the encoder is
        skipped and what is left is search + fetch.

Per mode it prints client wall-clock p50/p99, the server's own p50/p99 from the
`Server-Timing: encode, search, fetch, total` header, the p50 split between encode and
the rest (search + fetch), and the encoder's share of the server time (sum of encode /
sum of total). "other" is the p50 of total minus encode, search and fetch: the checks the
engine makes before it encodes (item count, model stamps, index generation). "client-server"
is the p50 of what HTTP, JSON, upload parsing and image decoding add on top of the total.

--items N writes a collection without running any model: N entries of clustered random
unit vectors at the configured models' dimensions, 70 % images (one clip/image item per
image document) and 30 % passages (one text document per passage, each with a clip/text
and a text/text item and a short generated text so BM25 has words), stamped with the
models' identities, written through Catalog.write_batch, published as the indexer does
(IndexSet.rebuild + save, then bump_generation). The catalog then holds 0.7N + 2 x 0.3N
= 1.3N item rows. Image documents have no files: file and thumbnail routes are not measured.

--synthetic N compares FAISS index types in process (no server), on N clustered unit
vectors (--clusters Gaussian clusters) and 1000 queries drawn near the data: Flat
(IndexFlatIP in IndexIDMap2, what searchd uses below SEARCHD_IVF_THRESHOLD), IVF{nlist},Flat, IVF{nlist},SQ8,
IVF{nlist},PQ{m} (nprobe swept; the smallest reaching recall@10 >= --target-recall against
Flat is kept) and HNSW{M} (efSearch swept the same way). The three IVF variants share one
coarse quantizer, trained once on a sample and assigned once; their "build alone" column
adds that shared cost back. Latency is one query per search call with
faiss.omp_set_num_threads(--threads), as the server calls FAISS. Memory is the size of
faiss.serialize_index and the process RSS growth while the index was built. The IVF,SQ8
index (what searchd builds past the threshold) is then written to a file and served by a
fresh process, loaded as `searchd serve` loads it (memory-mapped) and, for comparison, read
into memory; it prints the resident memory each adds, split into the process's own
(anonymous) pages and mapped file pages that worker processes share.

A benchmark, not a test: figures depend on the machine and on its load (the header
prints the load average). Run it on a quiet machine for figures worth quoting. On a busy
machine FAISS calls with more than one OpenMP thread can lose milliseconds waiting for a
descheduled thread (compare --threads 1,2).

The full figures (about 2 min, 3-5 min and 10-15 min on 2 quiet cores; the last needs
about 7 GB of RAM at 1M x 512):

    python bench/query_latency.py --sample --requests 100 --json bench/out/latency-sample.json
    python bench/query_latency.py --items 100000 --requests 100 --json bench/out/latency-items-100k.json
    python bench/query_latency.py --synthetic 1000000 --dim 512 --threads 1,2 --json bench/out/faiss-1m.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import io
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLE = REPO / "sample_data"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
TEXT_MODES = ("text-image", "text-text", "text-all")
IMAGE_MODES = ("image-image", "image-text", "image-all")

#: what people would type at the sample data: shapes, the photos, the documents (two in Chinese)
TEXT_QUERIES = [
    "a red circle", "blue square", "a green star", "yellow triangle", "purple shapes",
    "orange square on white", "an astronaut in a space suit", "a cup of coffee", "a cat",
    "a rocket on the launch pad", "a man with a camera", "nearest neighbour search with graphs",
    "product quantization of vectors", "how does attention work in transformers",
    "BM25 ranking function", "contrastive learning of images and text", "sentence embeddings",
    "reciprocal rank fusion", "running a local language model", "JPEG compression artifacts",
    "向量数据库", "学习率调度",
]

SAMPLE_IMAGES = ["photos/astronaut.jpg", "photos/coffee.jpg", "photos/rocket.jpg",
                 "shapes/red-circle-1.png", "shapes/blue-square-1.png", "shapes/green-star-1.png"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- machine and numbers ------------------------------------------------------------------

def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        mem_gb = None
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": mem_gb, "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_start": [round(v, 2) for v in os.getloadavg()],
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds")}


def pct(values, q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def table(headers: list[str], rows: list[list], title: str | None = None) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [title] if title else []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rss_mb(pid: int | str = "self") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def memory_mb(pid: int | str = "self") -> dict[str, float]:
    """Resident memory split into anonymous (the process's own) and file-backed pages
    (mapped files, shared with every process that maps the same file)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Anonymous"):
                out[key.lower()] = int(rest.split()[0]) / 1024
    except OSError:
        return {}
    out["file"] = out.get("rss", 0.0) - out.get("anonymous", 0.0)
    return out


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20


def parse_server_timing(header: str) -> dict[str, float]:
    out = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";")
        if rest.startswith("dur="):
            try:
                out[name] = float(rest[4:])
            except ValueError:
                pass
    return out


# --- the server ---------------------------------------------------------------------------

def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHD_")}
    env.update(OFFLINE_ENV)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real `searchd serve` on a free port of 127.0.0.1."""

    def __init__(self, data_dir: Path, models: str, log_dir: Path, timeout: float = 300,
                 extra_env: dict[str, str] | None = None):
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_dir) / f"serve-{self.port}.log"
        self.log = open(self.log_path, "w+")  # noqa: SIM115 - open for the server's lifetime
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "searchd", "serve", "--data-dir", str(data_dir), "--port", str(self.port),
             "--host", "127.0.0.1", "--models", models, "--offline"],
            env={**cli_env(), **(extra_env or {})}, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"searchd serve exited {self.proc.returncode}:\n{self.log.read()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"searchd serve did not become healthy in {timeout:.0f} s; see {self.log_path}")
            time.sleep(0.3)
        self.startup_s = time.perf_counter() - started

    def rss_mb(self) -> float | None:
        return rss_mb(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --- queries --------------------------------------------------------------------------------

def clip_image_size(models: str) -> int:
    """The CLIP input size, which decides how the server decodes an upload (JPEG draft)."""
    if models == "demo":
        try:
            cfg = json.loads((SAMPLE / "models" / "demo-clip" / "open_clip_config.json").read_text())
            return int(cfg["model_cfg"]["vision_cfg"]["image_size"])
        except (OSError, KeyError, ValueError):
            pass
    return 224


def pick_images(count: int) -> list[Path]:
    root = SAMPLE / "images"
    chosen = [root / p for p in SAMPLE_IMAGES if (root / p).exists()]
    others = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    for p in others:
        if len(chosen) >= count:
            break
        if p not in chosen:
            chosen.append(p)
    if not chosen:
        raise SystemExit(f"no images under {root}")
    return chosen[:count]


class ImagePayloads:
    """Upload bodies: each picked image re-encoded once in its own format (warm), and
    variants with one pixel changed (cold), each checked to decode, as the server
    decodes uploads, to pixels no earlier payload had, so the embedding cache misses."""

    def __init__(self, paths: list[Path], want: int):
        from PIL import Image

        from indexer.extract import ExtractOptions, open_image

        self._open_image, self._options, self.want = open_image, ExtractOptions(), want
        self.bases = []
        for path in paths:
            im = Image.open(path)
            im.load()
            fmt_ = "PNG" if (im.format or "").upper() == "PNG" else "JPEG"
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            self.bases.append((path.name, np.array(im), im.mode, fmt_))
        self.warm = [(name, self._encode(arr, mode, fmt_), fmt_) for name, arr, mode, fmt_ in self.bases]
        self._seen = {self._key(body) for _, body, _ in self.warm}
        self._counter = 0

    @staticmethod
    def _encode(arr: np.ndarray, mode: str, fmt_: str) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        im = Image.fromarray(arr, mode=mode)
        if fmt_ == "PNG":
            im.save(buf, format="PNG")
        else:
            im.save(buf, format="JPEG", quality=95)
        return buf.getvalue()

    def _key(self, body: bytes) -> tuple:
        image, _ = self._open_image(body, self._options, want=self.want)
        return hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest(), image.size

    def cold(self, i: int) -> tuple[str, bytes, str]:
        name, arr, mode, fmt_ = self.bases[i % len(self.bases)]
        h, w = arr.shape[:2]
        for _ in range(10_000):
            self._counter += 1
            pos = (self._counter * 7919) % (h * w)
            y, x = divmod(pos, w)
            changed = arr.copy()
            changed[y, x] = 255 - changed[y, x]
            body = self._encode(changed, mode, fmt_)
            key = self._key(body)
            if key not in self._seen:
                self._seen.add(key)
                return name, body, fmt_
        raise RuntimeError(f"could not make a unique variant of {name}")


def run_pass(client, url: str, mode: str, requests: list, k: int) -> dict:
    """Send each request in turn; collect client wall time and the Server-Timing figures."""
    wall, server = [], {"encode": [], "search": [], "fetch": [], "total": []}
    for req in requests:
        t0 = time.perf_counter()
        if mode in TEXT_MODES:
            resp = client.get(url + "/api/search", params={"q": req, "mode": mode, "k": k})
        else:
            name, body, fmt_ = req
            resp = client.post(url + "/api/search/image", params={"mode": mode, "k": k},
                               files={"file": (name, body, f"image/{fmt_.lower()}")})
        elapsed = (time.perf_counter() - t0) * 1000
        if resp.status_code != 200:
            raise RuntimeError(f"{mode}: HTTP {resp.status_code}: {resp.text[:500]}")
        timing = parse_server_timing(resp.headers.get("server-timing", ""))
        wall.append(elapsed)
        for key, values in server.items():
            values.append(timing.get(key, float("nan")))
    return summarize(wall, server, len(resp.json().get("hits", [])) if requests else 0)


def summarize(wall: list[float], server: dict[str, list[float]], hits: int) -> dict:
    enc = np.asarray(server["encode"])
    rest = np.asarray(server["search"]) + np.asarray(server["fetch"])
    total = np.asarray(server["total"])
    return {
        "n": len(wall), "hits_last": hits,
        "client_p50_ms": pct(wall, 50), "client_p99_ms": pct(wall, 99),
        "server_total_p50_ms": pct(total, 50), "server_total_p99_ms": pct(total, 99),
        "encode_p50_ms": pct(enc, 50), "search_p50_ms": pct(server["search"], 50),
        "fetch_p50_ms": pct(server["fetch"], 50), "search_fetch_p50_ms": pct(rest, 50),
        # total minus the three phases: the per-request checks before encoding (item count,
        # model check, generation check) and building the result
        "other_p50_ms": pct(total - enc - rest, 50),
        "encoder_share": float(enc.sum() / total.sum()) if total.sum() > 0 else None,
        "client_minus_server_p50_ms": pct(np.asarray(wall) - total, 50),
        "raw": {"client_ms": [round(v, 3) for v in wall],
                **{f"{k}_ms": [round(v, 3) for v in vs] for k, vs in server.items()}},
    }


def measure_server(url: str, models: str, n_requests: int, k: int, n_images: int, warmup: int,
                   modes: list[str]) -> dict:
    import httpx

    images = ImagePayloads(pick_images(n_images), clip_image_size(models))
    results: dict = {}
    counter = 0
    with httpx.Client(timeout=120) as client:
        for mode in modes:  # warm-up: JIT-ish first calls, thread pools, SQLite page cache
            reqs = ([f"warm up {i}" for i in range(warmup)] if mode in TEXT_MODES
                    else [images.cold(i) for i in range(warmup)])
            run_pass(client, url, mode, reqs, k)
        for mode in modes:
            log(f"  {mode}: cold pass ({n_requests} unique queries)")
            if mode in TEXT_MODES:
                # one counter over all modes: text-all must not find text-image's cold queries cached
                cold = [f"{TEXT_QUERIES[i % len(TEXT_QUERIES)]} {counter + i + 1}" for i in range(n_requests)]
                counter += n_requests
                warm = [TEXT_QUERIES[i % len(TEXT_QUERIES)] for i in range(n_requests)]
                prime = list(TEXT_QUERIES)
            else:
                cold = [images.cold(i) for i in range(n_requests)]
                warm = [images.warm[i % len(images.warm)] for i in range(n_requests)]
                prime = list(images.warm)
            cold_res = run_pass(client, url, mode, cold, k)
            run_pass(client, url, mode, prime, k)  # put the warm set in the LRU
            log(f"  {mode}: warm pass ({n_requests} repeated queries)")
            warm_res = run_pass(client, url, mode, warm, k)
            results[mode] = {"cold": cold_res, "warm": warm_res}
    return results


def print_modes(results: dict, title: str) -> None:
    headers = ["mode", "pass", "client p50", "client p99", "server p50", "server p99", "encode p50",
               "search+fetch p50", "(search/fetch p50)", "other p50", "encoder share", "client-server p50"]
    rows = []
    for mode, passes in results.items():
        for name in ("cold", "warm"):
            r = passes[name]
            rows.append([mode, name, fmt(r["client_p50_ms"]), fmt(r["client_p99_ms"]),
                         fmt(r["server_total_p50_ms"]), fmt(r["server_total_p99_ms"]), fmt(r["encode_p50_ms"]),
                         fmt(r["search_fetch_p50_ms"]),
                         f"{fmt(r['search_p50_ms'])}/{fmt(r['fetch_p50_ms'])}", fmt(r["other_p50_ms"]),
                         f"{100 * r['encoder_share']:.0f} %" if r["encoder_share"] is not None else "-",
                         fmt(r["client_minus_server_p50_ms"])])
    print()
    print(table(headers, rows, title + " (milliseconds; server = Server-Timing total)"))


def serve_and_measure(data_dir: Path, models: str, args, workdir: Path, label: str) -> dict:
    import httpx

    log(f"{label}: starting searchd serve on {data_dir}")
    extra_env = {"OMP_NUM_THREADS": str(args.server_omp_threads)} if args.server_omp_threads else {}
    if args.clip_model:
        extra_env["SEARCHD_CLIP_MODEL"] = args.clip_model
    server = Server(data_dir, models, workdir, extra_env=extra_env)
    try:
        rss_start = server.rss_mb()
        memory_start = memory_mb(server.proc.pid)
        status = httpx.get(server.url + "/api/status", timeout=60).json()
        log(f"{label}: serving on {server.url} (up in {server.startup_s:.1f} s); measuring")
        t0 = time.perf_counter()
        modes = measure_server(server.url, "default" if args.clip_model else models, args.requests, args.k, args.images, args.warmup, args.modes)
        elapsed = time.perf_counter() - t0
        rss_end = server.rss_mb()
        memory_end = memory_mb(server.proc.pid)
    finally:
        server.stop()
    counts = {"documents": status.get("documents"), "items": status.get("items_by_index") or status.get("items"),
              "indexes": status.get("indexes"), "models": status.get("models")}
    return {"data_dir": str(data_dir), "models": models, "server_env": extra_env, "server_startup_s": server.startup_s,
            "server_rss_mb_after_warmup": rss_start, "server_rss_mb_end": rss_end,
            "server_memory_after_warmup": memory_start, "server_memory_end": memory_end, "measure_s": elapsed,
            "requests_per_pass": args.requests, "k": args.k, "status": counts, "modes": modes}


def print_served(result: dict, title: str) -> None:
    st = result["status"]
    print()
    print(f"== {title}")
    print(f"data dir {result['data_dir']}  models {result['models']}  documents {st.get('documents')}  "
          f"items {st.get('items')}")
    models = st.get("models") or {}
    print("model stamps: " + "; ".join(f"{space}: {m.get('name')} {m.get('dim')}-d" for space, m in models.items() if m))
    print(f"server start-up {result['server_startup_s']:.1f} s; RSS {fmt(result['server_rss_mb_after_warmup'], 0)} MB "
          f"after start, {fmt(result['server_rss_mb_end'], 0)} MB at the end; "
          f"{result['requests_per_pass']} requests per pass, k={result['k']}"
          + (f"; server env {result['server_env']}" if result.get("server_env") else ""))
    end = result.get("server_memory_end") or {}
    if end:
        print(f"server memory at the end: {fmt(end.get('anonymous'), 0)} MB its own (anonymous) + "
              f"{fmt(end.get('file'), 0)} MB of mapped files (libraries, memory-mapped indexes: shared, reclaimable)")
    for key in ("index_s", "build_s"):
        if key in result:
            print(f"{key.replace('_s', '')} time: {result[key]:.1f} s")
    if "build" in result:
        b = result["build"]
        print(f"  write {b['write_s']:.1f} s ({b['entries'] / max(b['write_s'], 1e-9):.0f} entries/s), "
              f"rebuild+save indexes {b['publish_s']:.1f} s, catalog {b['catalog_mb']:.0f} MB, "
              f"indexes {b['indexes_mb']:.0f} MB")
    print_modes(result["modes"], title)


# --- part 1: sample data ----------------------------------------------------------------------

def part_sample(args, workdir: Path) -> dict:
    data_dir = workdir / "sample-data"
    log(f"sample: indexing {SAMPLE} with the {args.models} models into {data_dir}")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "searchd", "index", str(SAMPLE), "--data-dir", str(data_dir),
                           "--models", args.models, "--offline", "--json"],
                          env=cli_env(), cwd=REPO, capture_output=True, text=True, check=False)
    index_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"searchd index failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result = serve_and_measure(data_dir, args.models, args, workdir, "sample")
    result["index_s"] = index_s
    result["index_report"] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --- part 2: a generated collection -----------------------------------------------------------

_SYLLABLES = ("ka", "ri", "to", "me", "sa", "nu", "lo", "fe", "di", "vo", "ba", "ze", "mi", "tu", "re", "po",
              "la", "gi", "ne", "su", "ko", "va", "ti", "mu", "de")


def _vocabulary(size: int, rng) -> list[str]:
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 5)))))
    return sorted(words)


def _query_words() -> list[str]:
    from indexer.catalog import STOP_WORDS
    from searchd.engine import query_terms

    words = []
    for q in TEXT_QUERIES:
        if q.isascii():
            words += [t for t in query_terms(q) if t not in STOP_WORDS]
        else:
            words.append(q)  # a CJK query goes in whole; FTS indexes it character by character
    return sorted(set(words))


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def build_collection(data_dir: Path, n: int, models: str, clusters: int, seed: int, batch: int,
                     text_share: float, spread: float, clip_model: str = "") -> dict:
    """Write N clustered entries into a fresh catalog and publish them, without a model."""
    from indexer.catalog import DocumentWrite, ItemWrite, open_catalog
    from indexer.datadir import DataDir
    from indexer.encoders import load_encoders, preset_specs
    from indexer.lock import WriterLock
    from indexer.vectors import IndexSet

    t_models = time.perf_counter()
    clip, text = load_encoders(*preset_specs(models, clip_model), device="cpu", offline=True)
    clip_id, text_id = clip.identity, text.identity  # loads both models once
    models_s = time.perf_counter() - t_models
    clip_dim, text_dim = clip_id.dim, text_id.dim
    log(f"items: models {clip_id.describe()} / {text_id.describe()} (loaded in {models_s:.1f} s)")
    del clip, text
    gc.collect()

    rng = np.random.default_rng(seed)
    n_text = round(n * text_share)
    n_image = n - n_text
    clip_centres = _unit(rng.standard_normal((clusters, clip_dim)).astype(np.float32))
    text_centres = _unit(rng.standard_normal((clusters, text_dim)).astype(np.float32))
    vocab = _vocabulary(3000, rng)
    qwords = _query_words()
    topic_words = [rng.choice(vocab, size=3, replace=False).tolist() for _ in range(clusters)]
    # every word of the query list is a topic word of some clusters, so BM25 always has matches
    topic_q = [[qwords[c % len(qwords)], qwords[(7 * c + 3) % len(qwords)]] for c in range(clusters)]

    def noisy(centres, labels, dim):
        x = centres[labels] + rng.standard_normal((len(labels), dim), dtype=np.float32) * (spread / math.sqrt(dim))
        return _unit(x)

    dd = DataDir(data_dir)
    now_ns = time.time_ns()
    t0 = time.perf_counter()
    with WriterLock(data_dir):
        catalog = open_catalog(dd.catalog_path, create=True)
        try:
            catalog.check_model("clip", clip_id, data_dir)
            catalog.check_model("text", text_id, data_dir)
            # images first, then passages, interleaved per batch so ids mix like a real run
            order = np.concatenate([np.zeros(n_image, np.int8), np.ones(n_text, np.int8)])
            rng.shuffle(order)
            written = 0
            img_no = txt_no = 0
            for start in range(0, n, batch):
                kinds = order[start:start + batch]
                labels = rng.integers(clusters, size=len(kinds))
                n_img = int((kinds == 0).sum())
                img_vecs = noisy(clip_centres, labels[kinds == 0], clip_dim) if n_img else None
                txt_labels = labels[kinds == 1]
                clip_txt = noisy(clip_centres, txt_labels, clip_dim) if len(txt_labels) else None
                text_txt = noisy(text_centres, txt_labels, text_dim) if len(txt_labels) else None
                docs = []
                ii = tt = 0
                for kind, label in zip(kinds, labels):
                    if kind == 0:
                        img_no += 1
                        path = f"/generated/photos/{img_no // 1000:04d}/img-{img_no:07d}.jpg"
                        docs.append(DocumentWrite(
                            path=path, kind="image", size=2_000_000 + img_no, mtime_ns=now_ns - img_no * 10**9,
                            content_hash=hashlib.sha256(path.encode()).hexdigest(),
                            metadata={"width": 4000, "height": 3000, "format": "JPEG"},
                            items=[ItemWrite("clip", "image", 0, None, img_vecs[ii])]))
                        ii += 1
                    else:
                        txt_no += 1
                        path = f"/generated/docs/{txt_no // 1000:04d}/doc-{txt_no:07d}.md"
                        words = (rng.choice(vocab, size=int(rng.integers(30, 60))).tolist()
                                 + topic_words[label] * 2 + topic_q[label])
                        rng.shuffle(words)
                        passage = " ".join(words).capitalize() + "."
                        docs.append(DocumentWrite(
                            path=path, kind="text", size=len(passage), mtime_ns=now_ns - txt_no * 10**9,
                            content_hash=hashlib.sha256(path.encode()).hexdigest(),
                            metadata={"title": f"Generated document {txt_no}", "passages": 1},
                            items=[ItemWrite("clip", "text", 0, passage, clip_txt[tt]),
                                   ItemWrite("text", "text", 0, passage, text_txt[tt])]))
                        tt += 1
                catalog.write_batch(docs)
                written += len(docs)
                if (start // batch) % 10 == 9 or written == n:
                    rate = written / (time.perf_counter() - t0)
                    log(f"items: wrote {written}/{n} entries ({rate:.0f}/s)")
            write_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            indexes = IndexSet.rebuild(dd.indexes_dir, catalog)
            indexes.save(catalog.data_version, catalog.generation + 1)
            catalog.refresh_statistics()
            generation = catalog.bump_generation()
            publish_s = time.perf_counter() - t1
            counts = catalog.counts()
        finally:
            catalog.close()
    return {"entries": n, "images": n_image, "passages": n_text, "item_rows": n_image + 2 * n_text,
            "clusters": clusters, "spread": spread, "dims": {"clip": clip_dim, "text": text_dim},
            "models": {"clip": clip_id.to_dict(), "text": text_id.to_dict()}, "models_load_s": models_s,
            "write_s": write_s, "publish_s": publish_s, "generation": generation, "counts": counts,
            "catalog_mb": dd.catalog_path.stat().st_size / 2**20, "indexes_mb": dir_mb(dd.indexes_dir)}


def part_items(args, workdir: Path) -> dict:
    data_dir = workdir / f"generated-{args.items}"
    log(f"items: building a {args.items}-entry collection in {data_dir}")
    t0 = time.perf_counter()
    build = build_collection(data_dir, args.items, args.models, args.item_clusters, args.seed, args.batch,
                             args.text_share, args.spread, args.clip_model)
    build_s = time.perf_counter() - t0
    log(f"items: built in {build_s:.1f} s")
    result = serve_and_measure(data_dir, args.models, args, workdir, "items")
    result["build_s"] = build_s
    result["build"] = build
    return result


# --- part 3: FAISS index types in process -----------------------------------------------------

class ClusterModel:
    """Clustered unit vectors: a random unit centre per cluster plus noise whose expected norm
    is ``spread``, then re-normalised. A share ``1 - iso`` of the noise's variance lies in a
    random ``intrinsic``-dim subspace of each cluster (real embeddings have a low intrinsic
    dimension, which is what lets neighbours stand out); the rest is isotropic. intrinsic=0
    makes all of it isotropic (in high dimensions the neighbours inside a cluster are then
    almost equidistant: the hardest case for any approximate index)."""

    def __init__(self, d: int, clusters: int, spread: float, intrinsic: int, iso: float, rng):
        self.d, self.clusters, self.spread = d, clusters, spread
        self.centres = _unit(rng.standard_normal((clusters, d), dtype=np.float32))
        self.intrinsic = intrinsic if 0 < intrinsic < d else 0
        self.iso = 1.0 if not self.intrinsic else min(max(iso, 0.0), 1.0)
        # rows ~ N(0, 1/d): close to orthonormal in high dimension, so |z @ B| ~ |z|
        self.bases = (rng.standard_normal((clusters, self.intrinsic, d), dtype=np.float32) / np.float32(math.sqrt(d))
                      if self.intrinsic else None)

    def noise(self, labels: np.ndarray, scale: float, rng) -> np.ndarray:
        m, d = len(labels), self.d
        out = rng.standard_normal((m, d), dtype=np.float32)
        out *= np.float32(scale * math.sqrt(self.iso / d))
        if self.bases is not None:
            z = rng.standard_normal((m, self.intrinsic), dtype=np.float32)
            z *= np.float32(scale * math.sqrt((1 - self.iso) / self.intrinsic))
            order = np.argsort(labels, kind="stable")
            sorted_labels = labels[order]
            starts = np.searchsorted(sorted_labels, np.arange(self.clusters + 1))
            for c in range(self.clusters):
                rows = order[starts[c]:starts[c + 1]]
                if len(rows):
                    out[rows] += z[rows] @ self.bases[c]
        return out

    def sample(self, n: int, rng, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
        """-> (vectors (n, d) float32 unit norm, cluster labels)."""
        out = np.empty((n, self.d), dtype=np.float32)
        labels = rng.integers(self.clusters, size=n).astype(np.int32)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            block = self.noise(labels[s:e], self.spread, rng)
            block += self.centres[labels[s:e]]
            out[s:e] = _unit(block)
        return out, labels

    def near(self, x: np.ndarray, labels: np.ndarray, rng) -> np.ndarray:
        """Queries near given data points: half the spread of noise, same structure."""
        return _unit(x + self.noise(labels, self.spread / 2, rng))


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    hits = sum(len(np.intersect1d(f[:k][f[:k] >= 0], t[:k])) for f, t in zip(found, truth))
    return hits / (len(truth) * k)


def single_query_latency(index, queries: np.ndarray, k: int, budget_s: float, max_queries: int,
                         min_queries: int = 20) -> tuple[list[float], int]:
    for i in range(min(5, len(queries))):  # warm caches
        index.search(queries[i:i + 1], k)
    times = []
    deadline = time.perf_counter() + budget_s
    for i in range(min(max_queries, len(queries))):
        t = time.perf_counter()
        index.search(queries[i:i + 1], k)
        times.append((time.perf_counter() - t) * 1000)
        if len(times) >= min_queries and time.perf_counter() > deadline:
            break
    return times, len(times)


def index_bytes(index) -> int:
    import faiss

    blob = faiss.serialize_index(index)
    size = int(blob.nbytes)
    del blob
    return size


def part_synthetic(args, workdir: Path | None = None) -> dict:
    import faiss

    n, d, k = args.synthetic, args.dim, 10
    build_threads = args.build_threads or os.cpu_count() or 1
    search_threads = args.threads or [build_threads]
    nlist = args.nlist or max(1, round(4 * math.sqrt(n)))
    pq_m = args.pq_m or max(1, d // 8)
    if d % pq_m:
        raise SystemExit(f"--pq-m {pq_m} must divide --dim {d}")
    train_n = min(n, max(args.train_min, min(args.train_max, 40 * nlist)))
    types = args.types
    rng = np.random.default_rng(args.seed)
    result: dict = {"n": n, "dim": d, "k": k, "clusters": args.clusters, "spread": args.spread,
                    "intrinsic_dim": args.intrinsic_dim, "iso": args.iso,
                    "queries": args.queries, "nlist": nlist, "pq_m": pq_m, "train_n": train_n,
                    "kmeans_iters": args.kmeans_iters, "hnsw_m": args.hnsw_m,
                    "hnsw_ef_construction": args.hnsw_ef_construction, "build_threads": build_threads,
                    "search_threads": search_threads, "target_recall": args.target_recall, "indexes": []}
    faiss.omp_set_num_threads(build_threads)

    log(f"synthetic: generating {n} x {d} clustered unit vectors ({args.clusters} clusters)")
    t0 = time.perf_counter()
    model = ClusterModel(d, args.clusters, args.spread, args.intrinsic_dim, args.iso, rng)
    x, labels = model.sample(n, rng)
    ids = np.arange(1, n + 1, dtype=np.int64)  # item ids start at 1, as in the catalog
    picked = rng.choice(n, size=args.queries, replace=False)
    q = model.near(x[picked], labels[picked], rng)
    del labels, model
    sample = x[np.sort(rng.choice(n, size=train_n, replace=False))]
    result["generate_s"] = time.perf_counter() - t0
    log(f"synthetic: data ready in {result['generate_s']:.1f} s ({x.nbytes / 2**20:.0f} MB)")

    def finish(entry: dict, index, rss0: float | None) -> None:
        rss1 = rss_mb()
        entry["rss_delta_mb"] = (rss1 - rss0) if rss0 is not None and rss1 is not None else None
        entry["index_mb"] = index_bytes(index) / 2**20
        entry["bytes_per_vector"] = entry["index_mb"] * 2**20 / n

    def timed_latency(entry: dict, index) -> None:
        entry["latency"] = {}
        for threads in search_threads:
            faiss.omp_set_num_threads(threads)
            times, used = single_query_latency(index, q, k, args.latency_budget, args.queries)
            entry["latency"][str(threads)] = {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99), "queries": used}
        faiss.omp_set_num_threads(build_threads)
        first = entry["latency"][str(search_threads[0])]
        entry.update({"p50_ms": first["p50_ms"], "p99_ms": first["p99_ms"], "latency_queries": first["queries"]})

    def sweep(entry: dict, index, set_param, values: list[int], truth: np.ndarray) -> None:
        curve = []
        chosen = None
        for v in values:
            set_param(v)
            t = time.perf_counter()
            _, found = index.search(q, k)
            batch_s = time.perf_counter() - t
            r = recall_at(found, truth, k)
            curve.append({"param": v, "recall": r, "batch_ms_per_query": batch_s * 1000 / len(q)})
            log(f"synthetic:   {entry['name']} {entry['param_name']}={v}: recall@10 {r:.3f}")
            if r >= args.target_recall:
                chosen = v
                break
            if len(curve) >= 3 and curve[-1]["recall"] - curve[-3]["recall"] < 0.002:
                log(f"synthetic:   {entry['name']}: recall has levelled off below the target; sweep stopped")
                break
        entry["sweep"] = curve
        entry["reached_target"] = chosen is not None
        best = chosen if chosen is not None else max(curve, key=lambda c: (c["recall"], -c["param"]))["param"]
        entry["param"] = best
        set_param(best)
        entry["recall"] = next(c["recall"] for c in curve if c["param"] == best)
        timed_latency(entry, index)

    # Flat: the ground truth, and what searchd does today
    log("synthetic: Flat (IndexIDMap2(IndexFlatIP)) build + ground truth")
    rss0 = rss_mb()
    t = time.perf_counter()
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
    flat.add_with_ids(x, ids)
    flat_entry = {"name": "Flat", "factory": "IDMap2,Flat", "train_s": 0.0, "add_s": time.perf_counter() - t}
    flat_entry["build_s"] = flat_entry["build_alone_s"] = flat_entry["add_s"]
    finish(flat_entry, flat, rss0)
    t = time.perf_counter()
    _, truth = flat.search(q, k)
    flat_entry["batch_ms_per_query"] = (time.perf_counter() - t) * 1000 / len(q)
    flat_entry["recall"] = 1.0
    flat_entry["param_name"], flat_entry["param"], flat_entry["reached_target"] = "-", None, True
    timed_latency(flat_entry, flat)
    result["indexes"].append(flat_entry)
    log(f"synthetic: Flat p50 {flat_entry['p50_ms']:.2f} ms over {flat_entry['latency_queries']} queries")
    del flat
    gc.collect()

    nprobes = [p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if p <= nlist] or [nlist]
    ivf_types = [t_ for t_ in ("ivf", "ivfsq8", "ivfpq") if t_ in types]
    if ivf_types:
        log(f"synthetic: coarse quantizer: k-means {nlist} centroids on {train_n} vectors, {args.kmeans_iters} iterations")
        t = time.perf_counter()
        clus = faiss.Clustering(d, nlist)
        clus.niter = args.kmeans_iters
        clus.spherical = True
        clus.max_points_per_centroid = 10**9  # use the whole sample
        clus.seed = args.seed
        coarse = faiss.IndexFlatIP(d)
        clus.train(sample, coarse)
        coarse_train_s = time.perf_counter() - t
        centroids = coarse.reconstruct_n(0, nlist)
        log(f"synthetic: coarse trained in {coarse_train_s:.1f} s; assigning {n} vectors")
        t = time.perf_counter()
        assign = np.empty(n, dtype=np.int64)
        for s in range(0, n, 100_000):
            _, a = coarse.search(x[s:s + 100_000], 1)
            assign[s:s + 100_000] = a[:, 0]
        coarse_assign_s = time.perf_counter() - t
        result["coarse_train_s"], result["coarse_assign_s"] = coarse_train_s, coarse_assign_s
        sizes = np.bincount(assign, minlength=nlist)
        result["list_sizes"] = {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max()),
                                "empty": int((sizes == 0).sum())}
        log(f"synthetic: assigned in {coarse_assign_s:.1f} s; list sizes {result['list_sizes']}")
        del coarse, clus

        for kind in ivf_types:
            quantizer = faiss.IndexFlatIP(d)
            quantizer.add(centroids)
            if kind == "ivf":
                index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
                name = f"IVF{nlist},Flat"
            elif kind == "ivfsq8":
                index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                      faiss.METRIC_INNER_PRODUCT)
                name = f"IVF{nlist},SQ8"
            else:
                index = faiss.IndexIVFPQ(quantizer, d, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
                name = f"IVF{nlist},PQ{pq_m}"
            index.own_fields = False
            if kind == "ivfpq":
                index.pq.cp.niter = args.kmeans_iters  # faiss defaults to 25; bounded like the coarse k-means
            log(f"synthetic: {name}: train + add")
            rss0 = rss_mb()
            t = time.perf_counter()
            index.train(sample)  # the coarse quantizer is already trained: only SQ/PQ train here
            train_s = time.perf_counter() - t
            t = time.perf_counter()
            for s in range(0, n, 100_000):
                xs = np.ascontiguousarray(x[s:s + 100_000])
                index.add_core(len(xs), faiss.swig_ptr(xs), faiss.swig_ptr(ids[s:s + 100_000]),
                               faiss.swig_ptr(assign[s:s + 100_000]))
            add_s = time.perf_counter() - t
            entry = {"name": name, "factory": name, "train_s": train_s, "add_s": add_s, "build_s": train_s + add_s,
                     "build_alone_s": coarse_train_s + coarse_assign_s + train_s + add_s, "param_name": "nprobe"}
            finish(entry, index, rss0)
            log(f"synthetic: {name}: train {train_s:.1f} s, add {add_s:.1f} s, {entry['index_mb']:.0f} MB")

            def set_nprobe(v, index=index):
                index.nprobe = v
            sweep(entry, index, set_nprobe, nprobes, truth)
            result["indexes"].append(entry)
            log(f"synthetic: {name}: nprobe {entry['param']} recall {entry['recall']:.3f} p50 {entry['p50_ms']:.3f} ms")
            if kind == "ivfsq8" and workdir is not None:
                path, queries_path = workdir / "ivf-sq8.faiss", workdir / "queries.npy"
                faiss.write_index(index, str(path))
                np.save(queries_path, q)
                info = {"type": name, "nprobe": entry["param"]}
                result["serving"] = [serving_probe(path, queries_path, info, mmap) for mmap in (True, False)]
                log(f"synthetic: {name}: served from a fresh process: " + "; ".join(
                    f"{'mmap' if p['mmap'] else 'read'} RSS +{p['after']['rss'] - p['before']['rss']:.0f} MB"
                    for p in result["serving"]))
                path.unlink()
            del index, quantizer
            gc.collect()
        del assign

    if "hnsw" in types:
        name = f"HNSW{args.hnsw_m}"
        log(f"synthetic: {name} (efConstruction {args.hnsw_ef_construction}): add {n} vectors")
        rss0 = rss_mb()
        inner = faiss.IndexHNSWFlat(d, args.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = args.hnsw_ef_construction
        index = faiss.IndexIDMap2(inner)
        t = time.perf_counter()
        step = max(10_000, n // 10)
        for s in range(0, n, step):
            index.add_with_ids(x[s:s + step], ids[s:s + step])
            log(f"synthetic: {name}: {min(n, s + step)}/{n} added ({time.perf_counter() - t:.0f} s)")
        add_s = time.perf_counter() - t
        entry = {"name": name, "factory": f"IDMap2,HNSW{args.hnsw_m},Flat", "train_s": 0.0, "add_s": add_s,
                 "build_s": add_s, "build_alone_s": add_s, "param_name": "efSearch"}
        finish(entry, index, rss0)

        def set_ef(v, inner=inner):
            inner.hnsw.efSearch = v
        sweep(entry, index, set_ef, [16, 32, 64, 128, 256, 512, 1024], truth)
        result["indexes"].append(entry)
        del index, inner
        gc.collect()
    return result


def serving_probe(path: Path, queries_path: Path, info: dict, mmap: bool) -> dict:
    """In a fresh process (this script with --probe-index): what serving the saved index
    costs a server process, loaded the way `searchd serve` loads it (VectorIndex.read)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe-index", str(path),
           "--probe-queries", str(queries_path), "--probe-info", json.dumps(info)] + (["--probe-mmap"] if mmap else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise SystemExit(f"serving probe failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def probe_main(args) -> None:
    import faiss

    from indexer.vectors import VectorIndex

    faiss.omp_set_num_threads(1)  # as the server calls FAISS
    queries = np.load(args.probe_queries)
    before = memory_mb()
    t = time.perf_counter()
    index = VectorIndex.read(args.probe_index, json.loads(args.probe_info), mmap=args.probe_mmap)
    load_s = time.perf_counter() - t
    loaded = memory_mb()
    times = []
    for query in queries:
        t = time.perf_counter()
        index.search(query, 10)
        times.append((time.perf_counter() - t) * 1000)
    after = memory_mb()
    print(json.dumps({"mmap": args.probe_mmap, "load_s": load_s, "p50_ms": pct(times, 50), "p99_ms": pct(times, 99),
                      "queries": len(times), "before": before, "loaded": loaded, "after": after}))


def print_synthetic(res: dict) -> None:
    print()
    print(f"== FAISS index types, in process: N={res['n']}, dim={res['dim']}, {res['clusters']} clusters "
          f"(spread {res['spread']}, noise {100 * (1 - res['iso']):.0f} % in a {res['intrinsic_dim']}-d subspace "
          f"per cluster), {res['queries']} queries near the data, k=10")
    print(f"nlist={res['nlist']}, IVF trained on {res['train_n']} vectors ({res['kmeans_iters']} k-means iterations), "
          f"PQ m={res['pq_m']} x 8 bits, HNSW M={res['hnsw_m']} efConstruction={res['hnsw_ef_construction']}; "
          f"build threads {res['build_threads']}; latency: one query per search call, T = faiss.omp_set_num_threads; "
          f"data generated in {res['generate_s']:.1f} s")
    if "coarse_train_s" in res:
        ls = res["list_sizes"]
        print(f"shared coarse quantizer: train {res['coarse_train_s']:.1f} s, assign all {res['coarse_assign_s']:.1f} s; "
              f"list sizes min {ls['min']} / median {ls['median']:.0f} / max {ls['max']}, {ls['empty']} empty")
    threads = res["search_threads"]
    headers = ["index", "train s", "add s", "build alone s", "index MB", "B/vector", "RSS +MB", "param",
               "recall@10"]
    for t in threads:
        headers += [f"p50 ms T={t}", f"p99 ms T={t}", "n"]
    headers.append("batch ms/q")
    rows = []
    for e in res["indexes"]:
        param = "-" if e.get("param") is None else f"{e['param_name']}={e['param']}" + ("" if e["reached_target"] else " (!)")
        batch = e.get("batch_ms_per_query")
        if batch is None and e.get("sweep"):
            batch = next(c["batch_ms_per_query"] for c in e["sweep"] if c["param"] == e["param"])
        rows.append([e["name"], fmt(e["train_s"], 1), fmt(e["add_s"], 1), fmt(e["build_alone_s"], 1),
                     fmt(e["index_mb"], 1), fmt(e["bytes_per_vector"], 0), fmt(e["rss_delta_mb"], 0), param,
                     fmt(e["recall"], 3)]
                    + [v for t in threads for v in (fmt(e["latency"][str(t)]["p50_ms"], 3),
                                                    fmt(e["latency"][str(t)]["p99_ms"], 3),
                                                    e["latency"][str(t)]["queries"])]
                    + [fmt(batch, 3)])
    print(table(headers, rows))
    if any(not e["reached_target"] for e in res["indexes"]):
        print(f"(!) = recall@10 >= {res['target_recall']} not reached (the sweep ran out or levelled off); "
              f"the smallest setting with the best recall is shown.")
    for e in res["indexes"]:
        if e.get("sweep"):
            print(f"  {e['name']} sweep: " + ", ".join(f"{c['param']}:{c['recall']:.3f}" for c in e["sweep"]))
    if res.get("serving"):
        print()
        print("Serving the searchd index (IVF,SQ8) from its file in a fresh process, loaded as `searchd serve` "
              "loads it, then one search per query: resident memory grown over the process before loading "
              "(anonymous = the process's own; file = mapped pages, shared by every worker and reclaimable)")
        rows = []
        for probe in res["serving"]:
            grow = {key: probe["after"][key] - probe["before"][key] for key in ("rss", "anonymous", "file")}
            rows.append(["mmap (read-only)" if probe["mmap"] else "read into memory", fmt(probe["load_s"], 2),
                         fmt(grow["rss"], 0), fmt(grow["anonymous"], 0), fmt(grow["file"], 0),
                         fmt(probe["after"]["rss"], 0), fmt(probe["p50_ms"], 3), fmt(probe["p99_ms"], 3),
                         probe["queries"]])
        print(table(["load", "load s", "RSS +MB", "anon +MB", "file +MB", "process RSS MB", "p50 ms", "p99 ms",
                     "queries"], rows))


# --- main ---------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    part = ap.add_argument_group("what to measure (default: --sample)")
    part.add_argument("--sample", action="store_true", help="index sample_data/ and measure a served search")
    part.add_argument("--items", type=int, metavar="N", help="generate an N-entry collection (no model) and measure it served")
    part.add_argument("--data-dir", type=Path, help="measure an existing, already indexed data dir, served")
    part.add_argument("--synthetic", type=int, metavar="N", help="compare FAISS index types on N vectors, in process")

    served = ap.add_argument_group("served measurements")
    served.add_argument("--models", default="demo", choices=("demo", "default"), help="model preset (default: demo)")
    served.add_argument("--clip-model", default="",
                        help="CLIP override for --items and its server, e.g. ViT-B-32:random: the production "
                             "model's size, dimension and speed without its weights (default: the preset's)")
    served.add_argument("--requests", type=int, default=100, help="sequential requests per mode and pass (default: 100)")
    served.add_argument("--k", type=int, default=20, help="hits per request (default: 20)")
    served.add_argument("--warmup", type=int, default=5, help="discarded requests per mode first (default: 5)")
    served.add_argument("--images", type=int, default=6, help="query images taken from sample_data/images (default: 6)")
    served.add_argument("--server-omp-threads", type=int, default=0,
                        help="start the server with OMP_NUM_THREADS=N (FAISS and torch threads; default: unset)")
    served.add_argument("--modes", default=",".join(TEXT_MODES + IMAGE_MODES),
                        help="comma-separated modes to measure (default: all six)")

    gen = ap.add_argument_group("--items collection")
    gen.add_argument("--item-clusters", type=int, default=200, help="topic clusters in the collection (default: 200)")
    gen.add_argument("--text-share", type=float, default=0.3, help="share of entries that are passages (default: 0.3)")
    gen.add_argument("--batch", type=int, default=2000, help="documents per write_batch transaction (default: 2000)")

    syn = ap.add_argument_group("--synthetic comparison")
    syn.add_argument("--dim", type=int, default=512, help="vector dimension (default: 512, ViT-B-32)")
    syn.add_argument("--clusters", type=int, default=1000, help="Gaussian clusters in the data (default: 1000)")
    syn.add_argument("--intrinsic-dim", type=int, default=32,
                     help="dimension of each cluster's noise subspace; 0 = isotropic noise (default: 32)")
    syn.add_argument("--iso", type=float, default=0.1,
                     help="share of the noise variance that is isotropic anyway (default: 0.1)")
    syn.add_argument("--queries", type=int, default=1000, help="queries, drawn near data points (default: 1000)")
    syn.add_argument("--threads", default="",
                     help="FAISS threads while timing single queries; a comma list times each, e.g. 1,2 "
                          "(default: all cores). On a busy machine T>1 can cost milliseconds per call: "
                          "every OpenMP region waits for its slowest thread")
    syn.add_argument("--build-threads", type=int, default=0,
                     help="FAISS threads for training, adding and the batched recall searches (default: all cores)")
    syn.add_argument("--nlist", type=int, default=0, help="IVF lists (default: 4 x sqrt(N))")
    syn.add_argument("--pq-m", type=int, default=0, help="PQ sub-quantizers (default: dim / 8)")
    syn.add_argument("--hnsw-m", type=int, default=32, help="HNSW neighbours per node (default: 32)")
    syn.add_argument("--hnsw-ef-construction", type=int, default=40, help="HNSW efConstruction (default: 40)")
    syn.add_argument("--kmeans-iters", type=int, default=10, help="k-means iterations of the IVF quantizer (default: 10)")
    syn.add_argument("--train-min", type=int, default=100_000, help="least IVF training sample (default: 100000)")
    syn.add_argument("--train-max", type=int, default=200_000, help="largest IVF training sample (default: 200000)")
    syn.add_argument("--target-recall", type=float, default=0.95, help="recall@10 the sweeps aim for (default: 0.95)")
    syn.add_argument("--latency-budget", type=float, default=15.0,
                     help="seconds of single-query timing per index, at least 20 queries (default: 15)")
    syn.add_argument("--types", default="flat,ivf,ivfsq8,ivfpq,hnsw",
                     help="index types: flat (always), ivf, ivfsq8, ivfpq, hnsw (default: all)")

    ap.add_argument("--spread", type=float, default=1.0,
                    help="noise around a cluster centre, as the expected norm of the noise before "
                         "re-normalising (default: 1.0: cosine to the centre ~0.7)")
    ap.add_argument("--seed", type=int, default=0)
    # internal: the fresh process of the serving probe
    ap.add_argument("--probe-index", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--probe-queries", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--probe-info", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--probe-mmap", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, metavar="PATH", help="write every figure (and raw timings) to PATH")
    ap.add_argument("--workdir", type=Path, help="where data dirs and server logs go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (data dirs, server logs)")
    args = ap.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in TEXT_MODES + IMAGE_MODES]
    if bad:
        ap.error(f"unknown mode(s) {', '.join(bad)}")
    try:
        args.threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    except ValueError:
        ap.error("--threads takes integers, e.g. 1 or 1,2")
    if any(t < 1 for t in args.threads):
        ap.error("--threads must be 1 or more")
    args.types = {t.strip() for t in args.types.split(",") if t.strip()}
    if args.types - {"flat", "ivf", "ivfsq8", "ivfpq", "hnsw"}:
        ap.error(f"unknown index type(s) in --types {args.types}")
    if not (args.sample or args.items or args.synthetic or args.data_dir or args.probe_index):
        args.sample = True
    if args.requests < 1:
        ap.error("--requests must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.probe_index:
        return probe_main(args)
    os.environ.update(OFFLINE_ENV)
    machine = machine_info()
    parts = [p for p, on in (("sample", args.sample), ("data-dir", args.data_dir), ("items", args.items),
                             ("synthetic", args.synthetic)) if on]
    print(f"searchd query latency  {machine['date']}")
    print(f"machine: {machine['cores']} cores, {machine['cpu']}, {machine['memory_gb']} GB RAM, "
          f"Python {machine['python']}; load average at start {machine['loadavg_start']}")
    n_desc = ", ".join(filter(None, [f"items N={args.items}" if args.items else "",
                                     f"synthetic N={args.synthetic} dim={args.dim}" if args.synthetic else ""]))
    print(f"parts: {', '.join(parts)}{'; ' + n_desc if n_desc else ''}; models: {args.models}"
          f"{'' if not (args.sample or args.items or args.data_dir) else f'; {args.requests} requests per mode and pass'}")
    sys.stdout.flush()

    out: dict = {"machine": machine, "args": {k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v)
                                              for k, v in vars(args).items()}, "parts_s": {}}
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="searchd-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if args.sample:
            t = time.perf_counter()
            out["sample"] = part_sample(args, workdir)
            out["parts_s"]["sample"] = time.perf_counter() - t
            print_served(out["sample"], "sample_data/ (demo index)" if args.models == "demo" else "sample_data/")
        if args.data_dir:
            t = time.perf_counter()
            out["data_dir"] = serve_and_measure(args.data_dir, args.models, args, workdir, "data-dir")
            out["parts_s"]["data_dir"] = time.perf_counter() - t
            print_served(out["data_dir"], f"existing data dir {args.data_dir}")
        if args.items:
            t = time.perf_counter()
            out["items"] = part_items(args, workdir)
            out["parts_s"]["items"] = time.perf_counter() - t
            print_served(out["items"], f"generated collection: {args.items} entries "
                                       f"({out['items']['build']['item_rows']} item rows)")
        if args.synthetic:
            t = time.perf_counter()
            out["synthetic"] = part_synthetic(args, workdir)
            out["parts_s"]["synthetic"] = time.perf_counter() - t
            print_synthetic(out["synthetic"])
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep or args.workdir:
            print(f"\nkept {workdir}")
    out["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    print()
    print("part run times: " + ", ".join(f"{k} {v:.1f} s" for k, v in out["parts_s"].items())
          + f"; load average at the end {out['machine']['loadavg_end']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
