"""Fresh shape images for tests (a seed never used in training or sample_data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.encoders.demo_shapes import render_shape


def write_shape(folder: Path, color: str, shape: str, seed: int = 4242, size: int = 128, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{color}-{shape}-{seed}.png")
    render_shape(color, shape, np.random.default_rng(seed), size=size).save(path)
    return path
