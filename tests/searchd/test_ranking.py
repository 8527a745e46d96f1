"""Ranking's pure pieces: the relevance scale, backgrounds, keyword evidence, duplicates."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from searchd import ranking
from searchd.ranking import (Background, background_of, dhash, duplicate_groups, has_phrase, keyword_bonus,
                             pair_spread, relevance, term_coverage)


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_relevance_is_a_probability_that_is_one_half_at_the_floor_and_rises_with_margin():
    margins = np.linspace(-20, 20, 81)
    scores = [relevance(float(m)) for m in margins]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert relevance(0.0) == 0.5
    assert all(a < b for a, b in zip(scores[:40], scores[1:41]))  # strictly, where floats can tell
    assert scores == sorted(scores)
    assert Background(0.2, 0.05, floor=3.0).margin(0.4) == 1.0  # z 4 is one unit above floor 3


def test_background_centre_is_the_median_of_the_query_against_the_sample():
    query = unit([[1, 0, 0]])[0]
    sample = unit([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]])
    bg = background_of(query, sample, spread=0.25, floor=2.0)
    assert bg.center == np.median(sample @ query) and bg.spread == 0.25 and bg.floor == 2.0
    assert background_of(query, sample[:1], spread=0.25, floor=2.0) == Background(0.0, 1.0, 2.0)


def test_pair_spread_leaves_self_pairs_out_and_is_never_zero():
    items = unit(np.random.default_rng(0).normal(size=(20, 8)))
    sims = items @ items.T
    off_diagonal = sims[~np.eye(20, dtype=bool)]
    assert np.isclose(pair_spread(items, items), off_diagonal.std(), rtol=1e-5)
    assert np.isclose(pair_spread(items, items.copy()), sims.std(), rtol=1e-5)  # other queries: all pairs
    same = unit(np.ones((5, 8)))
    assert pair_spread(same, same) > 0  # a uniform collection still divides safely
    assert pair_spread(items[:1], items) == 0.0  # "no stand-ins": the caller falls back
    assert pair_spread(items, unit(np.ones((4, 3)))) == 0.0


def test_keyword_bonus_grows_with_evidence_and_is_zero_without():
    assert keyword_bonus(0.0, 0.0, 0.0, False, 0.0) == 0.0
    assert keyword_bonus(5.0, 5.0, 0.0, False, 0.0) == 0.0  # BM25 without any query word held counts nothing
    base = keyword_bonus(2.0, 4.0, 0.5, False, 0.0)
    assert base > 0
    assert keyword_bonus(2.0, 4.0, 1.0, False, 0.0) > base
    assert keyword_bonus(4.0, 4.0, 0.5, False, 0.0) > base
    assert keyword_bonus(2.0, 4.0, 0.5, True, 0.0) > base
    assert keyword_bonus(2.0, 4.0, 0.5, False, 1.0) > base


def test_term_coverage_counts_whole_latin_words_and_chinese_substrings():
    assert term_coverage(["cat"], "Concatenate the files") == 0.0
    assert term_coverage(["cat", "dog"], "A cat, not a dog-like fox.") == 1.0
    assert term_coverage(["cat", "dog"], "The CAT sat.") == 0.5
    assert term_coverage(["注意力", "机制"], "Transformer的注意力很重要") == 0.5
    assert term_coverage([], "anything") == 0.0


def test_term_coverage_latin_word_between_chinese_characters_is_a_whole_word():
    assert term_coverage(["lora", "微调"], "用LoRA微调大模型") == 1.0
    assert term_coverage(["bert"], "基于BERT的模型") == 1.0
    assert term_coverage(["lora"], "用LoRAx微调") == 0.0  # still not inside a longer Latin word
    assert term_coverage(["caf"], "un café") == 0.0  # an accented letter continues the word


def test_has_phrase_needs_the_words_together_in_order():
    assert has_phrase("heat  pump", "How a Heat\npump works")
    assert not has_phrase("pump heat", "How a heat pump works")
    assert not has_phrase("pump", "a heat pump")  # one Latin word is coverage, not a phrase
    assert has_phrase("注意力机制", "注意力机制是核心")
    assert not has_phrase("注意力机制", "注意力和机制")


def picture(size: int, flip: bool = False) -> Image.Image:
    scale = size / 256
    x = np.linspace(0, 255, size, dtype=np.float32)
    grey = np.tile(x[::-1] if flip else x, (size, 1))
    rgb = np.stack([grey, grey.T, 255 - grey], axis=-1).astype(np.uint8)
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    box = (40, 150, 120, 230) if flip else (40, 40, 120, 120)
    draw.ellipse([v * scale for v in box], fill=(255, 255, 255))
    draw.rectangle([v * scale for v in (150, 60, 220, 200)], fill=(20, 20, 20) if flip else (200, 30, 30))
    return image


def bits(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def test_dhash_survives_resizing_and_jpeg_but_not_a_different_picture():
    original = picture(256)
    buffer = io.BytesIO()
    original.resize((128, 128), Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=80)
    copy = Image.open(io.BytesIO(buffer.getvalue()))
    assert bits(dhash(original), dhash(copy)) == 0
    assert bits(dhash(original), dhash(picture(256, flip=True))) > ranking.DUPLICATE_HASH_BITS


def test_duplicate_groups_fold_copies_into_the_best_ranked():
    near = unit([[1, 0, 0], [0.99, 0.05, 0], [0.98, 0, 0.1], [0, 1, 0]])
    vectors = {7: near[0], 3: near[1], 5: near[2], 9: near[3]}
    hashes = {"a": 0b1111_0000, "b": 0b1111_0001, "c": (1 << 64) - 1 - 0b1111_0000, "d": 0}
    content = {7: "a", 3: "b", 5: "c", 9: "d", 4: "a"}
    groups = duplicate_groups([7, 3, 5, 9, 4], content, vectors, hashes.get)
    assert groups == {7: [3, 4], 5: [], 9: []}  # 3: near and 1 bit apart; 4: same bytes; 5: near, far hash
    assert duplicate_groups([3, 7], content, vectors, hashes.get) == {3: [7]}  # the first listed owns
    assert duplicate_groups([9, 4, 7], content, {}, hashes.get) == {9: [], 4: [7]}  # same bytes, no vectors


def test_the_same_picture_is_a_match_however_wide_the_spread():
    wide = ranking.Background(center=0.3, spread=0.3, floor=2.7, same=ranking.SAME_PICTURE)
    assert wide.margin(1.0) > 0 and ranking.relevance(wide.margin(1.0)) > 0.7  # z alone: 2.33, below
    assert wide.margin(0.9) == wide.z(0.9) - 2.7 < 0  # a close but different picture: the spread decides
    assert ranking.Background(center=0.3, spread=0.3, floor=2.7).margin(1.0) < 0
