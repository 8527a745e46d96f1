"""Write the demo corpus' shape pictures: sample_data/images/shapes/{color}-{shape}-{i}.png.

Two 128 px images per colour-shape pair (48 in all), from a fixed seed that differs from the
demo CLIP's training seed, so the demo searches pictures the model has never seen.

    python bench/render_sample_shapes.py [--out sample_data/images/shapes]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.encoders.demo_shapes import all_pairs, render_shape  # noqa: E402

SEED = 4242
PER_PAIR = 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "sample_data" / "images" / "shapes")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    n = 0
    for color, shape in all_pairs():
        for i in range(1, PER_PAIR + 1):
            # optimize=True keeps the files small; PNG output is deterministic for fixed pixels.
            render_shape(color, shape, rng, size=128).save(a.out / f"{color}-{shape}-{i}.png",
                                                           optimize=True)
            n += 1
    print(f"wrote {n} images to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
