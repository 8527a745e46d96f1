"""The bundled demo CLIP, loaded through open_clip's own local-dir code, on fresh shapes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from indexer.encoders.demo_shapes import all_pairs, caption, render_shape

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

MODEL_DIR = Path(__file__).resolve().parents[2] / "sample_data" / "models" / "demo-clip"
EVAL_SEED = 20240611  # different from the training seeds (0) and the sample-image seed
PER_PAIR = 10


@pytest.fixture(scope="module")
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


def test_zero_shot_top1_on_fresh_shapes(demo_clip):
    model, preprocess, tokenizer = demo_clip
    pairs = all_pairs()
    rng = np.random.default_rng(EVAL_SEED)
    images, labels = [], []
    for label, (color, shape) in enumerate(pairs):
        for _ in range(PER_PAIR):
            images.append(render_shape(color, shape, rng))
            labels.append(label)
    start = time.perf_counter()
    text = _embed_texts(model, tokenizer, [caption(c, s) for c, s in pairs])
    img = _embed_images(model, preprocess, images)
    pred = (img @ text.T).argmax(dim=1).numpy()
    accuracy = float((pred == np.asarray(labels)).mean())
    print(f"demo CLIP zero-shot top-1 over {len(pairs)} captions: {accuracy:.3f} "
          f"({len(images)} fresh images, {time.perf_counter() - start:.2f}s to embed)")
    assert accuracy >= 0.90


def test_blue_square_prefers_its_passage(demo_clip):
    model, preprocess, tokenizer = demo_clip
    rng = np.random.default_rng(EVAL_SEED + 1)
    images = [render_shape("blue", "square", rng) for _ in range(5)]
    passages = [
        "The blue square has four equal sides.",
        "FAISS is a library for efficient similarity search of dense vectors.",
        "a red circle",
    ]
    scores = _embed_images(model, preprocess, images) @ _embed_texts(model, tokenizer, passages).T
    print("blue square vs passages (mean cosine):", [round(float(s), 3) for s in scores.mean(0)])
    assert bool((scores[:, 0] > scores[:, 1]).all())
    assert bool((scores[:, 0] > scores[:, 2]).all())
