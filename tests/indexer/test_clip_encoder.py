"""The CLIP encoder through open_clip's real loading code."""

from __future__ import annotations

import numpy as np
import torch

from indexer.encoders.clip import ClipEncoder
from tests.model_factory import write_random_clip


def test_skipping_padding_after_end_of_text_changes_nothing(tmp_path, demo_encoders):
    texts = ["a red circle", "The blue square has four equal sides and four right angles, like a tile",
             "x", "一个红色的圆"]
    random_clip = ClipEncoder(f"local-dir:{write_random_clip(tmp_path / 'clip')}").load()
    for encoder in (demo_encoders[0], random_clip):
        tokens = encoder._tokenizer(texts)
        with torch.inference_mode():
            full = encoder.model.encode_text(tokens).numpy()
            trimmed = ClipEncoder._encode_tokens(encoder.model, tokens).numpy()
        np.testing.assert_allclose(trimmed, full, atol=1e-5)


def test_vectors_are_unit_norm_and_images_match_pixels(demo_encoders):
    from PIL import Image

    clip = demo_encoders[0]
    image = Image.new("RGB", (300, 200), (200, 30, 30))
    a = clip.encode_images([image])
    b = clip.encode_texts(["a red circle", "a blue star"])
    assert a.shape == (1, clip.identity.dim) and b.shape == (2, clip.identity.dim)
    assert a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(np.concatenate([a, b]), axis=1), 1.0, atol=1e-5)
