"""The bundled demo CLIP, loaded through open_clip's own local-dir code, on fresh shapes.

The model is bilingual: English and Chinese captions both find their shapes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from indexer.encoders.demo_shapes import all_pairs, caption, caption_zh, render_shape

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

MODEL_DIR = Path(__file__).resolve().parents[2] / "sample_data" / "models" / "demo-clip"
EVAL_SEED = 20240611  # different from the training seeds (0) and the sample-image seed
PER_PAIR = 10


@pytest.fixture(scope="session")
def demo_clip():
    if not (MODEL_DIR / "open_clip_config.json").is_file():
        pytest.fail(f"demo model missing: {MODEL_DIR} (run python -m indexer.encoders.demo_train)")
    torch.set_num_threads(2)
    spec = "local-dir:" + str(MODEL_DIR)
    model, _, preprocess = open_clip.create_model_and_transforms(spec)
    model.eval()
    tokenizer = open_clip.get_tokenizer(spec)
    return model, preprocess, tokenizer


def _embed_texts(model, tokenizer, texts):
    with torch.no_grad():
        t = model.encode_text(tokenizer(texts))
    return torch.nn.functional.normalize(t, dim=-1)


def _embed_images(model, preprocess, images):
    with torch.no_grad():
        x = torch.stack([preprocess(im) for im in images])
        return torch.nn.functional.normalize(model.encode_image(x), dim=-1)


@pytest.fixture(scope="session")
def fresh_shapes(demo_clip):
    """PER_PAIR fresh renders of every pair, embedded once: (image vectors, labels)."""
    model, preprocess, _ = demo_clip
    rng = np.random.default_rng(EVAL_SEED)
    images, labels = [], []
    for label, (color, shape) in enumerate(all_pairs()):
        for _ in range(PER_PAIR):
            images.append(render_shape(color, shape, rng))
            labels.append(label)
    return _embed_images(model, preprocess, images), np.asarray(labels)


@pytest.mark.parametrize("language, make_caption", [("en", caption), ("zh", caption_zh)])
def test_zero_shot_top1_on_fresh_shapes(demo_clip, fresh_shapes, language, make_caption):
    model, _, tokenizer = demo_clip
    img, labels = fresh_shapes
    pairs = all_pairs()
    start = time.perf_counter()
    text = _embed_texts(model, tokenizer, [make_caption(c, s) for c, s in pairs])
    pred = (img @ text.T).argmax(dim=1).numpy()
    accuracy = float((pred == labels).mean())
    print(f"demo CLIP zero-shot top-1 ({language}) over {len(pairs)} captions: {accuracy:.3f} "
          f"({len(labels)} fresh images, {time.perf_counter() - start:.2f}s to embed the captions)")
    assert accuracy >= 0.90


def test_chinese_captions_fit_the_context(demo_clip):
    """A Chinese character is 2-3 byte-level BPE tokens: the longest caption must not be cut."""
    _, _, tokenizer = demo_clip
    longest = max((caption_zh(c, s) for c, s in all_pairs()), key=lambda t: len(tokenizer.encode(t)))
    assert len(tokenizer.encode("一张" + longest + "的图片")) + 2 <= tokenizer.context_length


def test_chinese_query_finds_red_circles(demo_clip, fresh_shapes):
    model, _, tokenizer = demo_clip
    img, labels = fresh_shapes
    red_circle = all_pairs().index(("red", "circle"))
    for query in ("红色的圆形", "一个红色的圆形", "红圆"):
        order = torch.argsort(img @ _embed_texts(model, tokenizer, [query])[0], descending=True).numpy()
        top = labels[order[:PER_PAIR]]
        assert (top == red_circle).mean() >= 0.9, (query, top)


def test_blue_square_prefers_its_passage(demo_clip):
    model, preprocess, tokenizer = demo_clip
    rng = np.random.default_rng(EVAL_SEED + 1)
    images = [render_shape("blue", "square", rng) for _ in range(5)]
    passages = [
        "The blue square has four equal sides.",
        "蓝色的正方形有四条相等的边。",
        "FAISS is a library for efficient similarity search of dense vectors.",
        "向量数据库用于高效的相似性搜索。",
        "a red circle",
        "红色的圆形像一枚硬币一样圆。",
    ]
    scores = _embed_images(model, preprocess, images) @ _embed_texts(model, tokenizer, passages).T
    print("blue square vs passages (mean cosine):", [round(float(s), 3) for s in scores.mean(0)])
    for own in (0, 1):
        for other in (2, 3, 4, 5):
            assert bool((scores[:, own] > scores[:, other]).all()), (passages[own], passages[other])
