"""Synthetic coloured shapes for the bundled ``demo`` CLIP model.

The demo model (``sample_data/models/demo-clip``) is trained on these pictures, the tests
render fresh ones to measure it, and ``bench/render_sample_shapes.py`` writes the demo corpus.
Pure Pillow + numpy on purpose: importing this must not pull in torch.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

COLORS = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "triangle", "star")

# Chinese names: the demo model is bilingual, so "红色的圆形" finds red circles too.
COLORS_ZH = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色", "purple": "紫色",
             "orange": "橙色"}
SHAPES_ZH = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形"}

# Canonical sRGB value of each colour name; renders jitter around it.
_RGB = {
    "red": (215, 30, 35),
    "green": (35, 165, 55),
    "blue": (35, 75, 220),
    "yellow": (245, 220, 35),
    "purple": (135, 45, 175),
    "orange": (250, 135, 20),
}

# Backgrounds must stay at least this far (Euclidean, RGB 0-255) from the shape's colour.
_MIN_BG_DISTANCE = 130.0
# Supersampling factor: shapes are drawn large and shrunk, which anti-aliases their edges.
_SUPERSAMPLE = 2


def caption(color: str, shape: str) -> str:
    """The canonical caption of one colour-shape pair, e.g. ``"a blue square"``."""
    return f"a {color} {shape}"


def caption_zh(color: str, shape: str) -> str:
    """The canonical Chinese caption of one colour-shape pair, e.g. ``"蓝色的正方形"``."""
    return f"{COLORS_ZH[color]}的{SHAPES_ZH[shape]}"


def all_pairs() -> list[tuple[str, str]]:
    """All 24 (color, shape) pairs, colour-major, in a stable order."""
    return [(c, s) for c in COLORS for s in SHAPES]


def _jitter_color(color: str, rng: np.random.Generator) -> np.ndarray:
    base = np.asarray(_RGB[color], dtype=np.float64)
    return np.clip(base + rng.uniform(-18, 18, size=3), 0, 255)


def _far_enough(bg: np.ndarray, fg: np.ndarray) -> bool:
    return float(np.linalg.norm(bg - fg)) >= _MIN_BG_DISTANCE


def _pick_bg_color(fg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A light, dark or muted random colour that is not close to the shape colour."""
    for _ in range(50):
        kind = rng.random()
        if kind < 0.35:  # light: white-ish, paper, pastel grey
            bg = rng.uniform(200, 255) + rng.uniform(-15, 15, size=3)
        elif kind < 0.65:  # dark: black-ish, charcoal, navy-ish grey
            bg = rng.uniform(0, 60) + rng.uniform(-15, 15, size=3)
        else:  # muted random: a random hue blended towards grey so it is not a named colour
            grey = rng.uniform(60, 200)
            bg = 0.45 * rng.uniform(0, 255, size=3) + 0.55 * grey
        bg = np.clip(bg, 0, 255)
        if _far_enough(bg, fg):
            return bg
    # Fallback that is always far from every palette colour's luminance extremes.
    return np.full(3, 250.0) if fg.mean() < 128 else np.full(3, 10.0)


def _background(fg: np.ndarray, rng: np.random.Generator, size: int) -> Image.Image:
    c0 = _pick_bg_color(fg, rng)
    kind = rng.random()
    if kind < 0.55:  # plain
        arr = np.broadcast_to(c0, (size, size, 3)).copy()
    elif kind < 0.8:  # linear gradient in a random direction between two acceptable colours
        c1 = _pick_bg_color(fg, rng)
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        t = (xs - 0.5) * math.cos(angle) + (ys - 0.5) * math.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        arr = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    else:  # noise: blotchy low-frequency noise plus a little grain around the base colour
        cells = int(rng.integers(3, 9))
        blot = rng.normal(0, 18, size=(cells, cells, 3))
        blot_img = Image.fromarray(np.clip(blot + 128, 0, 255).astype(np.uint8))
        blot = np.asarray(blot_img.resize((size, size), Image.BICUBIC), dtype=np.float64) - 128
        grain = rng.normal(0, 6, size=(size, size, 3))
        arr = c0[None, None, :] + blot + grain
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _polygon(shape: str, cx: float, cy: float, r: float, rot: float, rng: np.random.Generator):
    if shape == "square":
        # r is the half-diagonal: keep the square's area comparable with the circle's.
        angles = [rot + math.pi / 4 + k * math.pi / 2 for k in range(4)]
        radii = [r] * 4
    elif shape == "triangle":
        angles = [rot - math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        radii = [r] * 3
    elif shape == "star":
        inner = r * rng.uniform(0.38, 0.5)
        angles = [rot - math.pi / 2 + k * math.pi / 5 for k in range(10)]
        radii = [r if k % 2 == 0 else inner for k in range(10)]
    else:
        raise ValueError(f"not a polygon shape: {shape!r}")
    return [(cx + rad * math.cos(a), cy + rad * math.sin(a)) for a, rad in zip(angles, radii)]


def render_shape(color: str, shape: str, rng: np.random.Generator, size: int = 128) -> Image.Image:
    """Render one ``color`` ``shape`` on a varied background as a ``size`` x ``size`` RGB image.

    Varies: shape size and position, rotation (square, triangle, star), background (plain
    light/dark/muted colour, gradient or noise, never close to the shape colour) and a slight
    jitter of the shape colour. Deterministic for a given ``rng`` state.
    """
    if color not in _RGB:
        raise ValueError(f"unknown colour {color!r}; expected one of {COLORS}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")

    fg = _jitter_color(color, rng)
    big = size * _SUPERSAMPLE
    img = _background(fg, rng, size).resize((big, big), Image.BILINEAR)

    r = rng.uniform(0.2, 0.42) * big  # circumradius
    if shape == "triangle":
        r *= 1.12  # a triangle fills less of its circle; compensate so sizes look alike
    margin = min(r * 1.02, big / 2 - 1)
    cx = rng.uniform(margin, big - margin)
    cy = rng.uniform(margin, big - margin)
    fill = tuple(int(v) for v in fg)

    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        rot = rng.uniform(0, 2 * math.pi)
        draw.polygon(_polygon(shape, cx, cy, r, rot, rng), fill=fill)

    img = img.resize((size, size), Image.LANCZOS)
    if rng.random() < 0.15:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.0))))
    return img
