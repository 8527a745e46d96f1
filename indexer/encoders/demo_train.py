"""Train the tiny ``demo`` CLIP on synthetic coloured shapes.

Run as::

    python -m indexer.encoders.demo_train --out sample_data/models/demo-clip [--seed 0] [--steps N]

It writes open_clip's ``local-dir:`` format into ``--out``: ``open_clip_config.json`` (keys
``model_cfg`` and ``preprocess_cfg``) and ``open_clip_model.safetensors``, so the model loads with
``open_clip.create_model_and_transforms("local-dir:" + out)`` and
``open_clip.get_tokenizer("local-dir:" + out)`` (the standard 49,408-token SimpleTokenizer).

This is a developer script, not library code: unlike the rest of indexer/ it prints progress.

How it trains, and why:

* Images are rendered once, passed through the same resize/crop open_clip's inference
  preprocess uses and kept as uint8; each step only flips, scales and normalises a batch.
* The loss is cross-entropy from each image to the 24 class captions (several random caption
  templates per class per step, any of a class's captions counts as the right answer), plus
  the symmetric caption -> images term. Unlike ClipLoss, two images of the same class in a batch
  are never each other's false negatives.
* Extra "negative" texts (filler sentences, ML jargon, Chinese, code) are appended as columns
  of the image -> text logits that are never a target, so off-topic passages score low.
* Captions and passages are embedded truncated to 16 tokens at search time, so captions are
  wrapped in random filler words that the model learns to ignore.
* Images of one class are each other's positives (a supervised image-image term), so
  image-to-image search finds the same shape and colour, not only the same colour.

The shipped model came from the defaults (seed 0, 6000 steps of batch 96, 600 pre-rendered
images per class): about 21 minutes on 2 quiet CPU cores, 100 % zero-shot top-1 on held-out
renders.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from indexer.encoders.demo_shapes import all_pairs, caption, render_shape

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"


def model_config(image_size: int = 64, patch: int = 8, v_width: int = 128, v_layers: int = 3,
                 t_width: int = 64, t_layers: int = 2, embed_dim: int = 64,
                 context_length: int = 16) -> dict:
    """The open_clip ``model_cfg`` of the demo CLIP."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {
            "image_size": image_size,
            "layers": v_layers,
            "width": v_width,
            "patch_size": patch,
            "head_width": 32,  # the default (64) would leave too few heads at these widths
        },
        "text_cfg": {
            "context_length": context_length,
            "vocab_size": 49408,
            "width": t_width,
            "heads": max(1, t_width // 16),
            "layers": t_layers,
        },
    }


def preprocess_config() -> dict:
    return {
        "mean": list(OPENAI_MEAN),
        "std": list(OPENAI_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }


# ----------------------------------------------------------------------------- text

_FILLER = (
    "the a an this that these those it is are was were be has have had with without and or but "
    "of in on at to from by for as near over under inside outside above below next left right "
    "here there some many few one two three four five six seven eight nine ten first second "
    "equal sides side corners corner points point edges edge angles round curved straight "
    "sharp flat shape shapes figure figures form drawing picture image photo page document "
    "text note example simple small large big tiny huge bright dark light pale deep solid "
    "plain nice pretty old new good bad very quite really also just only still always often "
    "never sometimes people time year day way thing world life hand part place case week "
    "company system program question work number night point home water room mother area "
    "money story fact month lot study book eye job word business issue kind head house "
    "service friend father power hour game line end member law car city community name "
    "president team minute idea kid body information back parent face others level office "
    "door health person art war history party result change morning reason research girl "
    "guy moment air teacher force education we you they he she i my your our their what "
    "which who when where why how all each every both more most other such no not can will "
    "would should could may might must shall do does did make made get got go went see saw "
    "know knew think take come look want give use find tell ask seem feel try leave call "
    "good great high long little own same able late hard early young important public"
).split()

_JARGON = (
    "faiss vector vectors index indexes embedding embeddings similarity search dense sparse "
    "nearest neighbour neighbor cosine distance model models transformer attention token "
    "tokens tokenizer encoder decoder clip bert retrieval query queries ranking bm25 fusion "
    "sqlite database table schema catalog python library api json http server request "
    "response latency throughput gpu cpu memory batch batches training inference gradient "
    "loss optimizer learning rate layer layers network neural dataset benchmark recall "
    "precision accuracy metric hnsw ivf quantization product cluster clustering kmeans "
    "linux file files folder directory path thread process cache hash checksum commit "
    "release version install package module function class method parameter config settings"
).split()

_NEGATIVE_SENTENCES = (
    "FAISS provides fast approximate nearest neighbour search over dense vectors.",
    "The library supports similarity search and clustering of dense embeddings.",
    "SQLite is a small, fast, self-contained SQL database engine.",
    "Reciprocal rank fusion combines several ranked lists into one.",
    "The transformer architecture relies entirely on attention mechanisms.",
    "BM25 is a bag-of-words ranking function used by search engines.",
    "Sentence embeddings map text to vectors that capture meaning.",
    "Install the package with pip and run the command line tool.",
    "The server listens on localhost and answers JSON requests.",
    "Gradient descent updates the weights to reduce the training loss.",
    "Quarterly revenue grew by twelve percent compared with last year.",
    "The meeting is scheduled for Tuesday morning at nine o'clock.",
    "Please read the terms and conditions before signing the contract.",
    "The recipe needs flour, sugar, butter and two eggs.",
    "He walked to the station and waited for the train.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "def main(): return 0",
    "import numpy as np",
    "SELECT id, name FROM documents WHERE size > 100;",
    "HTTP/1.1 404 Not Found",
    "向量数据库用于高效的相似性搜索。",
    "这是一个关于机器学习的文档。",
    "今天天气很好，我们去公园散步吧。",
    "搜索引擎根据查询返回相关的结果。",
    "人工智能正在改变我们的生活方式。",
    "東京は日本の首都です。",
    "Der schnelle Hund springt über den faulen Fuchs.",
    "La recherche sémantique utilise des vecteurs denses.",
)

_CJK = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可也你说能而子那得"

_TEMPLATES = (
    "a {c} {s}",
    "a {c} {s}",
    "a photo of a {c} {s}",
    "a picture of the {c} {s}",
    "an image of a {c} {s}",
    "{c} {s}",
    "the {c} {s}",
    "The {c} {s}.",
    "The {c} {s} is {f}",
    "The {c} {s} has {f}",
    "{f} the {c} {s} {f}",
    "{f} a {c} {s}",
    "a {c} {s} {f}",
    "{f} {c} {s}.",
    "This is a {c} {s} {f}",
    "A {c} {s} on a {f} background.",
    "a drawing of a {c} {s}",
    "{C} {s}: {f}",
)


def _filler(rng: np.random.Generator, lo: int, hi: int) -> str:
    n = int(rng.integers(lo, hi + 1))
    return " ".join(rng.choice(_FILLER, size=n).tolist())


def random_caption(color: str, shape: str, rng: np.random.Generator) -> str:
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    out = template.replace("{c}", color).replace("{C}", color.capitalize()).replace("{s}", shape)
    while "{f}" in out:
        out = out.replace("{f}", _filler(rng, 1, 6), 1)
    return out


def random_negative(rng: np.random.Generator) -> str:
    """A text with no colour or shape word: filler, jargon, fixed sentences, CJK or digits."""
    kind = rng.random()
    if kind < 0.3:
        text = _filler(rng, 2, 14)
    elif kind < 0.55:
        words = rng.choice(_JARGON + _FILLER[:40], size=int(rng.integers(2, 12))).tolist()
        text = " ".join(words)
    elif kind < 0.8:
        text = _NEGATIVE_SENTENCES[int(rng.integers(len(_NEGATIVE_SENTENCES)))]
    elif kind < 0.9:
        text = "".join(rng.choice(list(_CJK), size=int(rng.integers(3, 15))).tolist())
    else:
        text = " ".join(str(int(v)) for v in rng.integers(0, 10000, size=int(rng.integers(1, 6))))
    return text


# ----------------------------------------------------------------------------- images

def _shrink_fn(image_size: int):
    """open_clip's inference resize + centre crop, without ToTensor/Normalize (done per batch)."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    cfg = PreprocessCfg(size=image_size, **preprocess_config())
    full = image_transform_v2(cfg, is_train=False)
    # Compose([Resize, CenterCrop, MaybeConvertMode, MaybeToTensor, Normalize]): keep the PIL steps.
    from torchvision.transforms import Compose

    return Compose(full.transforms[:-2])


def render_dataset(per_class: int, image_size: int, rng: np.random.Generator):
    shrink = _shrink_fn(image_size)
    pairs = all_pairs()
    images = np.empty((len(pairs) * per_class, image_size, image_size, 3), dtype=np.uint8)
    labels = np.empty(len(pairs) * per_class, dtype=np.int64)
    k = 0
    for _ in range(per_class):
        for label, (color, shape) in enumerate(pairs):
            images[k] = np.asarray(shrink(render_shape(color, shape, rng)), dtype=np.uint8)
            labels[k] = label
            k += 1
    return images, labels


class _Normalizer:
    def __init__(self):
        self.mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)

    def __call__(self, batch_uint8: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(batch_uint8).permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self.mean) / self.std


def _augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flips and 90-degree turns: every class is invariant to them."""
    out = batch.copy()
    for i in range(len(out)):
        img = out[i]
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = np.rot90(img, int(rng.integers(4)))
        out[i] = img
    return out


# ----------------------------------------------------------------------------- training

def _multi_positive_ce(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """-log(sum of softmax over the positive columns), averaged over rows."""
    all_lse = torch.logsumexp(logits, dim=1)
    pos_lse = torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)
    return (all_lse - pos_lse).mean()


@torch.no_grad()
def zero_shot_accuracy(model, tokenizer, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    texts = tokenizer([caption(c, s) for c, s in all_pairs()])
    t = F.normalize(model.encode_text(texts), dim=-1)
    i = F.normalize(model.encode_image(images), dim=-1)
    pred = (i @ t.T).argmax(dim=1)
    model.train()
    return float((pred == labels).float().mean())


def train(out: Path, seed: int = 0, steps: int = 6000, batch: int = 96, per_class: int = 600,
          captions_per_class: int = 2, negatives: int = 16, lr: float = 1e-3,
          init_scale: float = 1 / 0.07, threads: int = 2, i2i_weight: float = 0.5,
          **cfg_overrides) -> dict:
    import open_clip
    from open_clip import CLIP
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0 = time.time()

    cfg = model_config(**cfg_overrides)
    model = CLIP(**cfg)
    with torch.no_grad():
        # CLIP's own default is 1/0.07; exposed because a sharper start may learn faster.
        model.logit_scale.fill_(math.log(init_scale))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters; cfg={json.dumps(cfg)}", flush=True)
    tokenizer = open_clip.SimpleTokenizer(context_length=cfg["text_cfg"]["context_length"])
    image_size = cfg["vision_cfg"]["image_size"]

    images, labels = render_dataset(per_class, image_size, rng)
    eval_rng = np.random.default_rng(seed + 7919)
    eval_images, eval_labels = render_dataset(5, image_size, eval_rng)
    normalize = _Normalizer()
    eval_x, eval_y = normalize(eval_images), torch.from_numpy(eval_labels)
    print(f"rendered {len(images)} train + {len(eval_images)} eval images "
          f"in {time.time() - t0:.0f}s", flush=True)

    # Caption and negative pools, tokenized once.
    pairs = all_pairs()
    n_cls = len(pairs)
    caps_per_pool = 256
    cap_tokens = torch.stack([
        tokenizer([random_caption(c, s, rng) for _ in range(caps_per_pool)]) for c, s in pairs
    ])  # (n_cls, caps_per_pool, ctx)
    neg_tokens = tokenizer([random_negative(rng) for _ in range(4096)])

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    by_class = [np.flatnonzero(labels == k) for k in range(n_cls)]
    per_step_class = max(1, batch // n_cls)
    model.train()
    t_train = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = np.concatenate([rng.choice(ix, size=per_step_class, replace=False) for ix in by_class])
        x = normalize(_augment(images[idx], rng))
        y = torch.from_numpy(labels[idx])

        cap_pick = torch.from_numpy(rng.integers(caps_per_pool, size=(n_cls, captions_per_class)))
        caps = torch.stack([cap_tokens[k, cap_pick[k]] for k in range(n_cls)])
        caps = caps.reshape(n_cls * captions_per_class, -1)
        cap_cls = torch.arange(n_cls).repeat_interleave(captions_per_class)
        negs = neg_tokens[torch.from_numpy(rng.choice(len(neg_tokens), size=negatives, replace=False))]

        img_f = F.normalize(model.encode_image(x), dim=-1)
        txt_f = F.normalize(model.encode_text(torch.cat([caps, negs])), dim=-1)
        scale = model.logit_scale.exp().clamp(max=100)
        logits = scale * img_f @ txt_f.T  # (B, n_caps + negatives)

        n_caps = len(caps)
        pos_i2t = torch.zeros_like(logits, dtype=torch.bool)
        pos_i2t[:, :n_caps] = y[:, None] == cap_cls[None, :]
        loss_i2t = _multi_positive_ce(logits, pos_i2t)
        loss_t2i = _multi_positive_ce(logits[:, :n_caps].T, pos_i2t[:, :n_caps].T)
        # Images of one class are each other's positives, so image-image search finds
        # the same shape and colour, not just the same colour.
        sim_ii = (scale * img_f @ img_f.T).masked_fill(torch.eye(len(y), dtype=torch.bool), float("-inf"))
        pos_ii = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool)
        loss_i2i = _multi_positive_ce(sim_ii, pos_ii)
        loss = loss_i2t + 0.5 * loss_t2i + i2i_weight * loss_i2i

        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

        if step % 50 == 0 or step == steps - 1:
            el = time.time() - t_train
            msg = (f"step {step:5d}/{steps} loss {loss.item():.3f} (i2t {loss_i2t.item():.3f} "
                   f"t2i {loss_t2i.item():.3f}) scale {scale.item():.1f} lr {lr_at(step):.2e} "
                   f"{el:.0f}s")
            if step % 250 == 0 or step == steps - 1:
                msg += f" eval top-1 {zero_shot_accuracy(model, tokenizer, eval_x, eval_y):.3f}"
            print(msg, flush=True)

    acc = zero_shot_accuracy(model, tokenizer, eval_x, eval_y)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / CONFIG_NAME, "w", encoding="utf-8") as f:
        json.dump({"model_cfg": cfg, "preprocess_cfg": preprocess_config(),
                   "demo_train": {"seed": seed, "steps": steps, "batch": batch, "i2i_weight": i2i_weight,
                                  "per_class": per_class, "lr": lr, "init_scale": init_scale,
                                  "eval_top1": round(acc, 4)}},
                  f, indent=2)
    # fp16 halves the file (the 49,408-row token embedding dominates); open_clip casts on load.
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME))
    os.chmod(out / WEIGHTS_NAME, 0o644)  # safetensors creates it owner-only
    total = time.time() - t0
    print(f"final zero-shot top-1 over {n_cls} captions: {acc:.3f}; "
          f"wrote {out} in {total:.0f}s total ({time.time() - t_train:.0f}s training)", flush=True)
    return {"accuracy": acc, "seconds": total}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train the tiny demo CLIP on synthetic shapes.")
    p.add_argument("--out", type=Path, required=True, help="output folder (open_clip local-dir)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=96)
    p.add_argument("--per-class", type=int, default=600, help="pre-rendered images per class")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--init-scale", type=float, default=1 / 0.07,
                   help="initial logit scale (CLIP's 1/0.07 by default)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--i2i-weight", type=float, default=0.5, help="weight of the image-image term")
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--v-width", type=int, default=128)
    p.add_argument("--v-layers", type=int, default=3)
    p.add_argument("--t-width", type=int, default=64)
    p.add_argument("--t-layers", type=int, default=2)
    a = p.parse_args(argv)
    train(a.out, seed=a.seed, steps=a.steps, batch=a.batch, per_class=a.per_class, lr=a.lr,
          init_scale=a.init_scale, threads=a.threads, i2i_weight=a.i2i_weight, patch=a.patch, v_width=a.v_width,
          v_layers=a.v_layers, t_width=a.t_width, t_layers=a.t_layers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
