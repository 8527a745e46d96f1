"""Train the tiny ``demo`` CLIP on synthetic coloured shapes.

Run as::

    python -m indexer.encoders.demo_train --out sample_data/models/demo-clip [--seed 0] [--steps N]

It writes open_clip's ``local-dir:`` format into ``--out``: ``open_clip_config.json`` (keys
``model_cfg`` and ``preprocess_cfg``) and ``open_clip_model.safetensors``, so the model loads with
``open_clip.create_model_and_transforms("local-dir:" + out)`` and
``open_clip.get_tokenizer("local-dir:" + out)`` (the standard 49,408-token SimpleTokenizer).

This is a developer script, not library code: unlike the rest of indexer/ it prints progress.

The model is bilingual: English captions ("a red circle") and Chinese ones ("红色的圆形",
"一个红色的圆形", "红色圆形的图片", "红圆") of every pair are positives of the same images.

How it trains, and why:

* Images are rendered once, passed through the same resize/crop open_clip's inference
  preprocess uses and kept as uint8 (``--cache`` keeps them in an .npz between runs); each step
  only flips, turns and normalises a batch.
* The loss is cross-entropy from each image to the 24 class captions (several random caption
  templates per class per step in each language, any of a class's captions counts as the right
  answer; computed once per language so that neither language can lean on the other), plus the
  symmetric caption -> images term. Unlike ClipLoss, two images of the same class in a batch
  are never each other's false negatives.
* Extra "negative" texts (filler sentences, ML jargon, Chinese, code) are appended as columns
  of the image -> text logits that are never a target, so off-topic passages score low.
* Captions and passages are embedded truncated to the context length (32 tokens) at search
  time, so captions are wrapped in random filler words (English or Chinese) that the model learns
  to ignore. The context is 32 because open_clip's tokenizer is byte-level BPE: a Chinese
  character costs 2-3 tokens, so "一个绿色的三角形" is 20 tokens with start and end.
* Images of one class are each other's positives (a supervised image-image term), so
  image-to-image search finds the same shape and colour, not only the same colour.
* ``--init-from DIR --lock-image`` goes on from a trained model with its image tower frozen
  (LiT, "locked-image tuning"): each training image is encoded once, a step costs only the text
  tower, and image vectors (so image-image search) stay exactly as they were.

The shipped model was made in two steps, both seed 0:

1. English only, from scratch: 6000 steps of batch 96, 600 pre-rendered images per class,
   context 16 (the defaults of this script before Chinese was added): about 21 minutes on 2
   quiet CPU cores, 100 % zero-shot top-1 on held-out renders.
2. Bilingual, with that image tower locked::

       python -m indexer.encoders.demo_train --out sample_data/models/demo-clip \
           --init-from sample_data/models/demo-clip --lock-image --steps 800 --threads 1

   run on the English model (restore it first, e.g. ``git checkout 4b60029 --
   sample_data/models/demo-clip``): about 4.5 minutes on 2 shared cores (1 minute rendering, 2
   encoding the images, 2 training), 100 % zero-shot top-1 in English and in Chinese on 240
   held-out renders, and the same bytes on every run. ``demo_train.init_from`` in the config
   records the folder, weights hash and recipe it started from.

Training from scratch with both languages (no ``--init-from``) works too but costs the full
image-tower run. Use ``--threads 1`` when other work shares the cores: two threads that keep
losing their core made steps ten times slower here.
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

from indexer.encoders.demo_shapes import COLORS_ZH, all_pairs, caption, caption_zh, render_shape

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"


def model_config(image_size: int = 64, patch: int = 8, v_width: int = 128, v_layers: int = 3,
                 t_width: int = 64, t_layers: int = 2, embed_dim: int = 64,
                 context_length: int = 32) -> dict:
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


# Chinese captions. Shape and colour words have a few natural variants each. Filler words hold no
# colour or shape character (no 圆 方 星 or colour name; 角 only inside words such as 直角), none
# ends in 三 or 五 and none starts with 角, so two filler words side by side never spell a shape.
_COLOR_ZH_SHORT = {"red": "红", "green": "绿", "blue": "蓝", "yellow": "黄", "purple": "紫", "orange": "橙"}
_SHAPE_ZH_VARIANTS = {
    "circle": ("圆形", "圆形", "圆形", "圆", "圆圈", "圆盘"),
    "square": ("正方形", "正方形", "正方形", "方形", "方块"),
    "triangle": ("三角形", "三角形", "三角形", "三角"),
    "star": ("星形", "星形", "五角星", "星星"),
}

_FILLER_ZH = (
    "它 是 有 像 很 和 在 上 下 里 这 那 也 都 就 又 还 只 非常 一样 一枚 一颗 一片 一块 看起来 "
    "就像 好像 四条 五个 三个 四个 相等 的边 直边 直角 尖角 顶点 内角 边长 对角线 中心 周围 "
    "外面 里面 上面 下面 对称 稳定 旋转 光滑 曲线 轮廓 形状 图形 图案 图画 图片 照片 画面 "
    "简单 小小 大大 明亮 深 浅 漂亮 常见 孩子 画 用 做 时候 每 所有 没有 硬币 天空 树叶 太阳 "
    "水果 标志 旗帜 贴纸 樱桃 柠檬 葡萄 草地 瓷砖 纸片 夜空 装饰 徽章 信号灯 奖励 温暖 凉爽 "
    "鲜艳 柔和 干净 整齐 平坦 尖锐 弯曲 笔直 相同 不同 我们 你 他们 今天 可以 应该 因为 所以 "
    "但是 如果 然后 已经 一起 东西 世界 生活 时间 问题 工作 学习 朋友 房子 城市 书 桌子"
).split()

_TEMPLATES_ZH = (
    "{c}的{s}",
    "{c}的{s}",
    "{c}的{s}",
    "一个{c}的{s}",
    "一个{c}的{s}",
    "{c}{s}",
    "{c}{s}的图片",
    "一张{c}{s}的图片",
    "{c}{s}的照片",
    "这是一个{c}的{s}。",
    "图中有一个{c}的{s}",
    "画着{c}{s}的图",
    "{c}的{s}{f}",
    "{c}的{s}，{f}",
    "{c}的{s}{f}。{F}",
    "{c}的{s}是{f}",
    "{f}{c}的{s}",
    "{f}，一个{c}的{s}{f}",
    "{k}{s}",
    "{k}{s}",
)


def _filler(rng: np.random.Generator, lo: int, hi: int, words=_FILLER, sep: str = " ") -> str:
    n = int(rng.integers(lo, hi + 1))
    return sep.join(rng.choice(words, size=n).tolist())


def random_caption(color: str, shape: str, rng: np.random.Generator) -> str:
    """An English caption of one pair, often wrapped in filler words the model must ignore.

    Some get a long tail: passages are embedded up to the context length (32 tokens), so a
    passage's first sentence is followed by many words that do not name the shape.
    """
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    out = template.replace("{c}", color).replace("{C}", color.capitalize()).replace("{s}", shape)
    while "{f}" in out:
        out = out.replace("{f}", _filler(rng, 1, 6), 1)
    if rng.random() < 0.3:  # a passage-like tail after the caption
        out += " " + _filler(rng, 4, 24)
    return out


def random_caption_zh(color: str, shape: str, rng: np.random.Generator) -> str:
    """A Chinese caption of one pair (e.g. 一个红色的圆形, 红色圆形的图片, 红圆), sometimes in filler."""
    template = _TEMPLATES_ZH[int(rng.integers(len(_TEMPLATES_ZH)))]
    variants = _SHAPE_ZH_VARIANTS[shape]
    out = (template.replace("{c}", COLORS_ZH[color]).replace("{k}", _COLOR_ZH_SHORT[color])
           .replace("{s}", variants[int(rng.integers(len(variants)))]))
    while "{f}" in out:
        out = out.replace("{f}", _filler(rng, 1, 4, _FILLER_ZH, ""), 1)
    while "{F}" in out:
        out = out.replace("{F}", _filler(rng, 3, 12, _FILLER_ZH, ""), 1)
    if rng.random() < 0.2:
        out += "。" + _filler(rng, 3, 12, _FILLER_ZH, "")
    return out


def random_negative(rng: np.random.Generator) -> str:
    """A text with no colour or shape word: filler, jargon, fixed sentences, CJK or digits."""
    kind = rng.random()
    if kind < 0.25:
        text = _filler(rng, 2, 24)
    elif kind < 0.45:
        words = rng.choice(_JARGON + _FILLER[:40], size=int(rng.integers(2, 12))).tolist()
        text = " ".join(words)
    elif kind < 0.65:
        text = _NEGATIVE_SENTENCES[int(rng.integers(len(_NEGATIVE_SENTENCES)))]
    elif kind < 0.75:
        text = "".join(rng.choice(list(_CJK), size=int(rng.integers(3, 15))).tolist())
    elif kind < 0.92:
        text = _filler(rng, 2, 10, _FILLER_ZH, "")
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
def zero_shot_accuracy(model, tokenizer, image_features: torch.Tensor, labels: torch.Tensor,
                       make_caption=caption) -> float:
    """Top-1 of unit-norm ``image_features`` against one canonical caption per pair."""
    model.eval()
    texts = tokenizer([make_caption(c, s) for c, s in all_pairs()])
    t = F.normalize(model.encode_text(texts), dim=-1)
    pred = (image_features @ t.T).argmax(dim=1)
    model.train()
    return float((pred == labels).float().mean())


def _caption_end(text: str, names) -> int:
    """Where the first shape name in ``text`` ends (the caption's core), or its length."""
    ends = [text.find(n) + len(n) for n in names if n in text]
    return min(ends) if ends else len(text)


def _caption_pool(make, color: str, shape: str, names, n: int, rng: np.random.Generator,
                  tokenizer) -> torch.Tensor:
    """``n`` random captions of one pair, tokenized; a caption whose colour and shape would be
    cut off by the context length is drawn again, so no training caption loses its label."""
    room = tokenizer.context_length - 2  # start and end of text
    texts = []
    while len(texts) < n:
        text = make(color, shape, rng)
        if len(tokenizer.encode(text[:_caption_end(text, names)])) <= room:
            texts.append(text)
    return tokenizer(texts)


def render_cached(per_class: int, image_size: int, seed: int, cache: Path | None):
    """``render_dataset`` for the training seed, kept in ``cache`` (an .npz) between runs."""
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            if int(z["seed"]) == seed and len(z["labels"]) == per_class * len(all_pairs()) \
                    and z["images"].shape[1] == image_size:
                return z["images"], z["labels"]
    images, labels = render_dataset(per_class, image_size, np.random.default_rng((seed, 1)))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, labels=labels, seed=seed)
    return images, labels


@torch.no_grad()
def image_features(model, images: np.ndarray, normalize, chunk: int = 256) -> torch.Tensor:
    model.eval()
    feats = [F.normalize(model.encode_image(normalize(images[i:i + chunk])), dim=-1)
             for i in range(0, len(images), chunk)]
    model.train()
    return torch.cat(feats)


def load_weights(model, folder: Path) -> None:
    """Load a demo CLIP's weights into ``model``, whose context may be longer than theirs."""
    from safetensors.torch import load_file

    state = {k: v.float() for k, v in load_file(str(folder / WEIGHTS_NAME)).items()}
    pos = state["positional_embedding"]
    ctx = model.positional_embedding.shape[0]
    if pos.shape[0] < ctx:
        # Positions past the old context were never trained: start them as the last one.
        state["positional_embedding"] = torch.cat([pos, pos[-1:].expand(ctx - len(pos), -1)])
    elif pos.shape[0] > ctx:
        state["positional_embedding"] = pos[:ctx]
    model.load_state_dict(state)


def _provenance(folder: Path) -> dict:
    """What a tuned model started from: the folder's name, its weights' hash and its recipe."""
    import hashlib

    with open(folder / CONFIG_NAME, encoding="utf-8") as f:
        recipe = json.load(f).get("demo_train", {})
    digest = hashlib.sha256((folder / WEIGHTS_NAME).read_bytes()).hexdigest()
    return {"folder": folder.name, "weights_sha256": digest, "demo_train": recipe}


def train(out: Path, seed: int = 0, steps: int = 6000, batch: int = 96, per_class: int = 600,
          captions_per_class: int = 2, negatives: int = 16, lr: float = 1e-3,
          init_scale: float = 1 / 0.07, threads: int = 2, i2i_weight: float = 0.5,
          cache: Path | None = None, init_from: Path | None = None, lock_image: bool = False,
          views: int = 2, **cfg_overrides) -> dict:
    """Train from scratch, or go on from the model in ``init_from``.

    ``lock_image`` keeps the image tower as it is and tunes only the text side (LiT, "locked
    image tuning"): image vectors, and so image-image search, stay the same, each image is
    encoded once (``views`` randomly flipped/turned copies of each) and a step costs only the
    text tower, about a tenth of a full step.
    """
    import open_clip
    from open_clip import CLIP
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0 = time.time()

    if lock_image and init_from is None:
        raise ValueError("lock_image needs a trained image tower: pass init_from")
    if init_from is not None:
        with open(init_from / CONFIG_NAME, encoding="utf-8") as f:
            cfg = json.load(f)["model_cfg"]
        if "context_length" in cfg_overrides:
            cfg["text_cfg"]["context_length"] = cfg_overrides["context_length"]
        model = CLIP(**cfg)
        load_weights(model, init_from)
        origin = _provenance(init_from)  # now: --out may be the same folder
        print(f"started from {init_from}", flush=True)
    else:
        cfg = model_config(**cfg_overrides)
        model = CLIP(**cfg)
        with torch.no_grad():
            # CLIP's own default is 1/0.07; exposed because a sharper start may learn faster.
            model.logit_scale.fill_(math.log(init_scale))
    if lock_image:
        model.visual.requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters; cfg={json.dumps(cfg)}", flush=True)
    tokenizer = open_clip.SimpleTokenizer(context_length=cfg["text_cfg"]["context_length"])
    image_size = cfg["vision_cfg"]["image_size"]

    # The images come from their own generator (seeded like the rest), so a cached render
    # leaves every later random draw unchanged.
    images, labels = render_cached(per_class, image_size, seed, cache)
    eval_rng = np.random.default_rng(seed + 7919)
    eval_images, eval_labels = render_dataset(10, image_size, eval_rng)
    normalize = _Normalizer()
    eval_x, eval_y = normalize(eval_images), torch.from_numpy(eval_labels)
    print(f"rendered {len(images)} train + {len(eval_images)} eval images "
          f"in {time.time() - t0:.0f}s", flush=True)
    if lock_image:
        train_feats = torch.stack([image_features(model, _augment(images, rng), normalize)
                                   for _ in range(views)])  # (views, n, d)
        locked_eval = image_features(model, eval_images, normalize)
        print(f"encoded {views} views of the training images in {time.time() - t0:.0f}s", flush=True)

    def eval_features() -> torch.Tensor:
        if lock_image:
            return locked_eval
        with torch.no_grad():
            model.eval()
            feats = F.normalize(model.encode_image(eval_x), dim=-1)
            model.train()
        return feats

    # Caption and negative pools, tokenized once.
    pairs = all_pairs()
    n_cls = len(pairs)
    caps_per_pool = 256
    # One pool per language, (n_cls, caps_per_pool, ctx); each step takes captions from both.
    cap_tokens = torch.cat([
        torch.stack([_caption_pool(random_caption, c, s, [s], caps_per_pool, rng, tokenizer)
                     for c, s in pairs]),
        torch.stack([_caption_pool(random_caption_zh, c, s, _SHAPE_ZH_VARIANTS[s], caps_per_pool,
                                   rng, tokenizer) for c, s in pairs]),
    ], dim=1)
    caps_per_pool *= 2
    neg_tokens = tokenizer([random_negative(rng) for _ in range(4096)])

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    # Columns of the step's logits per language: per class captions_per_class English, then as
    # many Chinese captions; the negatives (after all captions) belong to both.
    is_zh = (torch.arange(n_cls * 2 * captions_per_class) % (2 * captions_per_class)) >= captions_per_class
    negative_cols = torch.arange(n_cls * 2 * captions_per_class, n_cls * 2 * captions_per_class + negatives)
    lang_cols = [torch.cat([torch.nonzero(m).flatten(), negative_cols]) for m in (~is_zh, is_zh)]
    by_class = [np.flatnonzero(labels == k) for k in range(n_cls)]
    per_step_class = max(1, batch // n_cls)
    model.train()
    t_train = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = np.concatenate([rng.choice(ix, size=per_step_class, replace=False) for ix in by_class])
        y = torch.from_numpy(labels[idx])
        if lock_image:
            img_f = train_feats[torch.from_numpy(rng.integers(views, size=len(idx))), torch.from_numpy(idx)]
        else:
            img_f = F.normalize(model.encode_image(normalize(_augment(images[idx], rng))), dim=-1)

        half = caps_per_pool // 2  # captions_per_class English and as many Chinese ones
        cap_pick = torch.from_numpy(np.concatenate([
            rng.integers(half, size=(n_cls, captions_per_class)),
            half + rng.integers(half, size=(n_cls, captions_per_class))], axis=1))
        caps = torch.stack([cap_tokens[k, cap_pick[k]] for k in range(n_cls)])
        caps = caps.reshape(n_cls * 2 * captions_per_class, -1)
        cap_cls = torch.arange(n_cls).repeat_interleave(2 * captions_per_class)
        negs = neg_tokens[torch.from_numpy(rng.choice(len(neg_tokens), size=negatives, replace=False))]

        txt_f = F.normalize(model.encode_text(torch.cat([caps, negs])), dim=-1)
        scale = model.logit_scale.exp().clamp(max=100)
        logits = scale * img_f @ txt_f.T  # (B, n_caps + negatives)

        n_caps = len(caps)
        pos_i2t = torch.zeros_like(logits, dtype=torch.bool)
        pos_i2t[:, :n_caps] = y[:, None] == cap_cls[None, :]
        # Image -> text once per language (its captions and the negatives), so neither language
        # can rest on the other: any right caption would do in a joint softmax.
        loss_i2t = sum(_multi_positive_ce(logits[:, cols], pos_i2t[:, cols]) for cols in lang_cols) / 2
        loss_t2i = _multi_positive_ce(logits[:, :n_caps].T, pos_i2t[:, :n_caps].T)
        loss = loss_i2t + 0.5 * loss_t2i
        if not lock_image:  # a constant when the image tower is locked
            # Images of one class are each other's positives, so image-image search finds
            # the same shape and colour, not just the same colour.
            eye = torch.eye(len(y), dtype=torch.bool)
            sim_ii = (scale * img_f @ img_f.T).masked_fill(eye, float("-inf"))
            loss = loss + i2i_weight * _multi_positive_ce(sim_ii, (y[:, None] == y[None, :]) & ~eye)

        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

        if step % 50 == 0 or step == steps - 1:
            el = time.time() - t_train
            msg = (f"step {step:5d}/{steps} loss {loss.item():.3f} (i2t {loss_i2t.item():.3f} "
                   f"t2i {loss_t2i.item():.3f}) scale {scale.item():.1f} lr {lr_at(step):.2e} "
                   f"{el:.0f}s")
            if step % 250 == 0 or step == steps - 1:
                en = zero_shot_accuracy(model, tokenizer, eval_features(), eval_y)
                zh = zero_shot_accuracy(model, tokenizer, eval_features(), eval_y, caption_zh)
                msg += f" eval top-1 en {en:.3f} zh {zh:.3f}"
            print(msg, flush=True)

    acc = zero_shot_accuracy(model, tokenizer, eval_features(), eval_y)
    acc_zh = zero_shot_accuracy(model, tokenizer, eval_features(), eval_y, caption_zh)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / CONFIG_NAME, "w", encoding="utf-8") as f:
        json.dump({"model_cfg": cfg, "preprocess_cfg": preprocess_config(),
                   "demo_train": {"seed": seed, "steps": steps, "batch": batch, "i2i_weight": i2i_weight,
                                  "per_class": per_class, "lr": lr, "init_scale": init_scale,
                                  "negatives": negatives, "captions_per_class": captions_per_class,
                                  "init_from": origin if init_from else None,
                                  "lock_image": lock_image, "views": views,
                                  "context_length": cfg["text_cfg"]["context_length"],
                                  "languages": ["en", "zh"], "seconds": round(time.time() - t0),
                                  "eval_top1": round(acc, 4), "eval_top1_zh": round(acc_zh, 4)}},
                  f, indent=2)
    # fp16 halves the file (the 49,408-row token embedding dominates); open_clip casts on load.
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME))
    os.chmod(out / WEIGHTS_NAME, 0o644)  # safetensors creates it owner-only
    total = time.time() - t0
    print(f"final zero-shot top-1 over {n_cls} captions: en {acc:.3f}, zh {acc_zh:.3f}; "
          f"wrote {out} in {total:.0f}s total ({time.time() - t_train:.0f}s training)", flush=True)
    return {"accuracy": acc, "accuracy_zh": acc_zh, "seconds": total}


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
    p.add_argument("--context-length", type=int, default=32,
                   help="text tokens (a Chinese character is 2-3 byte-level BPE tokens)")
    p.add_argument("--cache", type=Path, default=None,
                   help="an .npz that keeps the rendered training images between runs")
    p.add_argument("--init-from", type=Path, default=None,
                   help="start from this demo CLIP folder (its architecture; a longer context is fine)")
    p.add_argument("--lock-image", action="store_true",
                   help="keep the image tower of --init-from and tune only the text side")
    p.add_argument("--views", type=int, default=2, help="augmented copies per image with --lock-image")
    p.add_argument("--negatives", type=int, default=16, help="off-topic texts per step")
    p.add_argument("--captions-per-class", type=int, default=2, help="per language, per step")
    a = p.parse_args(argv)
    train(a.out, seed=a.seed, steps=a.steps, batch=a.batch, per_class=a.per_class, lr=a.lr,
          init_scale=a.init_scale, threads=a.threads, i2i_weight=a.i2i_weight, patch=a.patch, v_width=a.v_width,
          v_layers=a.v_layers, t_width=a.t_width, t_layers=a.t_layers,
          context_length=a.context_length, cache=a.cache, init_from=a.init_from,
          lock_image=a.lock_image, views=a.views, negatives=a.negatives,
          captions_per_class=a.captions_per_class)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
