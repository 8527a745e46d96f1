"""Single text-query latency of the CLIP text tower on CPU, by torch thread count.

    python bench/text_query.py [--clip ViT-B-32:random] [--queries 50]

A query's time on CPU is mostly the text tower: this prints tokenizer and model p50
per thread setting, and what the LRU cache and batching of concurrent queries save.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer.encoders.clip import ClipEncoder  # noqa: E402
from searchd.engine import QueryBatcher  # noqa: E402


def p50(xs):
    return statistics.median(xs) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="ViT-B-32:random")
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    clip = ClipEncoder(args.clip).load()
    queries = [f"a photo of a dog on the beach number {i}" for i in range(args.queries)]
    clip.encode_texts(queries[:4])

    tok = []
    for q in queries:
        t = time.perf_counter()
        clip._tokenizer([q])
        tok.append(time.perf_counter() - t)
    print(f"model {args.clip}; tokenizer p50 {p50(tok):.2f} ms")
    for threads in (1, 2, 4):
        torch.set_num_threads(threads)
        times = []
        for q in queries:
            t = time.perf_counter()
            clip.encode_texts([q])
            times.append(time.perf_counter() - t)
        print(f"torch threads {threads}: one query p50 {p50(times):.2f} ms, p99 "
              f"{sorted(times)[int(len(times) * 0.99) - 1] * 1000:.2f} ms")
    torch.set_num_threads(2)

    # eight clients at once: one model call per query, or batched
    for label, encode in (("one call per query", lambda q: clip.encode_texts([q])[0]),
                          ("batched (QueryBatcher)", QueryBatcher(clip.encode_texts))):
        t = time.perf_counter()
        threads = [threading.Thread(target=lambda qs=queries[i::8]: [encode(q) for q in qs]) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        print(f"8 concurrent clients, {label}: {len(queries) / (time.perf_counter() - t):.1f} queries/s")


if __name__ == "__main__":
    main()
