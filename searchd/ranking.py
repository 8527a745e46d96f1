"""Ranking: one relevance scale for every space, a floor, hybrid text scoring, duplicates.

Raw scores from different spaces do not compare: a CLIP text-to-image cosine of 0.25 can
be excellent while an e5 passage cosine of 0.80 is chance. So every list is calibrated
against the background of its own space *for this query*: the centre is the median of the
query's similarities to a fixed random sample of the same index, the spread that of
stand-in pairs drawn from the collection itself (not constants tuned to one model). A
hit's z-score says how far above chance it stands; less the floor of its (query kind,
item kind) pair it is the hit's *margin*, which is what every list is merged by, and
``relevance(margin)`` maps it into [0, 1] for people and clients (0.5 at the floor).
Qdrant's distribution-based score fusion normalises by each returned list's own mean and
spread instead; a returned list is the top of the distribution, so its spread says little
about chance. bench/relevance.py compares this against reciprocal rank fusion.

Keyword evidence for passages (BM25, the share of the query's words a passage holds, an
exact phrase, words in the title) is added in z units, so a passage that says what the
query says climbs without a keyword-only match outranking meaning.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.keywords import HAN_CHARS, SINGLE_CHARS

_CJK = re.compile(f"[{HAN_CHARS}{SINGLE_CHARS}]")

#: a sample this big gives the median of the background to within a few hundredths
BACKGROUND_SAMPLE = 1024
#: the z-score above which a hit is better than chance, per (query kind, item kind).
#: One z-scale does not fit every pair: a word query's best passage sits lower above its
#: background than a word query's best image does, and an image's nearest other image
#: lower still. Measured on the shipped judgements (bench/relevance.py --floors): the
#: lowest floor that keeps a no-answer query's page free of that kind, capped where it
#: would hide judged-relevant hits.
FLOORS = {("text", "image"): 3.3, ("image", "image"): 2.7, ("image", "text"): 3.3, ("text", "text"): 1.0}
#: an image at least this close to the query image is the same picture (resized, re-encoded)
SAME_PICTURE = 0.95
#: a script's own centre is used once the background sample holds this many of its passages
MIN_SCRIPT_GROUP = 16
#: relevance rises from 0.27 to 0.73 over this many z-units around the floor
Z_SCALE = 1.0
#: keyword evidence, in z units (bench/relevance.py compares the weights)
W_BM25 = 1.0
W_COVERAGE = 1.0
W_PHRASE = 0.5
W_TITLE = 0.5
#: near-duplicates: CLIP cosine to consider a pair at all, then the dHash bits that may differ
DUPLICATE_COSINE = 0.9
DUPLICATE_HASH_BITS = 10


@dataclass(frozen=True)
class Background:
    """Chance-level similarity of one query in one index: centre and spread."""

    center: float
    spread: float
    floor: float = 0.0
    #: passages only: the centre among the sample's passages of each script, where enough
    centers: dict[str, float] = field(default_factory=dict, compare=False)
    #: images by an image: the cosine from which a hit is the same picture, a match whatever
    #: the spread says (a collection of photos and drawings spreads very wide)
    same: float | None = None

    def z(self, score: float, script: str | None = None) -> float:
        return (score - self.centers.get(script, self.center)) / self.spread

    def margin(self, score: float, script: str | None = None) -> float:
        """How far (in z-units) a cosine stands above this pair's floor: > 0 is relevant.

        A passage is measured against chance among passages of its own script: a
        multilingual text model puts any Chinese passage nearer a Chinese query than an
        English one, whatever either says, so one centre would lift every Chinese passage
        for a Chinese query (and sink every one for an English query)."""
        margin = self.z(score, script) - self.floor
        if self.same is not None and score >= self.same:
            margin = max(margin, (score - self.same) / (1.0 - self.same))
        return margin


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def script_of(text: str) -> str:
    """"cjk" when at least a fifth of a text's letters are Chinese, Japanese or Korean."""
    letters = sum(ch.isalpha() for ch in text)
    return "cjk" if letters and len(_CJK.findall(text)) / letters >= 0.2 else "latin"


def relevance(margin: float) -> float:
    """A margin above the floor -> relevance in [0, 1], the same scale for every kind:
    0.5 at the floor, so ``min_score=0.5`` is the floor and more is stricter."""
    return 1.0 / (1.0 + math.exp(-margin / Z_SCALE))


def background_of(query: np.ndarray, sample: np.ndarray, spread: float, floor: float = 0.0,
                  scripts: np.ndarray | None = None) -> Background:
    """Chance for this query in one index: the median of its similarities to a sample of
    the index, with the index's own spread (``pair_spread``).

    The centre is the query's own, because a short query sits lower or higher against
    everything than a passage does; the spread is the collection's, because the query's
    own similarities in a small or uniform collection (48 coloured shapes) are spread by
    the very items it is looking for, which would make a perfect match look ordinary."""
    if sample.shape[0] < 2:
        return Background(0.0, 1.0, floor)
    sims = sample @ np.asarray(query, dtype=np.float32).reshape(-1)
    centers = {}
    if scripts is not None and len(scripts) == len(sims):
        for script in set(scripts.tolist()):
            group = sims[scripts == script]
            if len(group) >= MIN_SCRIPT_GROUP:
                centers[script] = float(np.median(group))
    return Background(float(np.median(sims)), spread, floor, centers)


def pair_spread(queries: np.ndarray, items: np.ndarray) -> float:
    """The standard deviation of similarities between stand-in queries and items of an index:
    how far apart two unrelated things of this space usually are (self-pairs left out)."""
    if queries.shape[0] < 2 or items.shape[0] < 2 or queries.shape[1] != items.shape[1]:
        return 0.0
    sims = queries @ items.T
    if queries is items:
        sims = sims[~np.eye(len(items), dtype=bool)]
    return max(float(sims.std()), 1e-3)


class BackgroundSamples:
    """A fixed random sample of each index's vectors, and the spreads between them, drawn
    once per published generation."""

    def __init__(self, size: int = BACKGROUND_SAMPLE, seed: int = 0):
        self.size = size
        self.seed = seed
        self._samples: dict[tuple[str, str], np.ndarray] = {}
        self._scripts: dict[tuple[str, str], np.ndarray] = {}
        self._spreads: dict[tuple, float] = {}
        self._generation: int | None = None
        self._lock = threading.Lock()

    def _reset_if_new(self, generation: int) -> None:
        if generation != self._generation:
            self._samples, self._scripts, self._spreads, self._generation = {}, {}, {}, generation

    def get(self, catalog, generation: int, space: str, modality: str) -> np.ndarray:
        key = (space, modality)
        with self._lock:
            self._reset_if_new(generation)
            sample = self._samples.get(key)
        if sample is not None:
            return sample
        ids = catalog.item_ids(space, modality)
        if len(ids) > self.size:
            ids = np.sort(np.random.default_rng(self.seed).choice(ids, self.size, replace=False))
        vectors = catalog.get_vectors(ids.tolist()) if len(ids) else {}
        kept = [i for i in ids.tolist() if i in vectors]
        sample = np.stack([vectors[i] for i in kept]).astype(np.float32) if kept else np.zeros((0, 1), np.float32)
        scripts = None
        if modality == "text" and kept:
            records = catalog.items(kept)
            scripts = np.asarray([script_of(records[i].text or "") if i in records else "" for i in kept])
        with self._lock:
            if generation == self._generation:
                self._samples[key] = sample
                if scripts is not None:
                    self._scripts[key] = scripts
        return sample

    def background(self, catalog, generation: int, space: str, modality: str, query_modality: str,
                   query: np.ndarray) -> Background:
        """Chance for ``query`` (a text or an image) in the (space, modality) index."""
        items = self.get(catalog, generation, space, modality)
        key = (space, modality, query_modality)
        with self._lock:
            spread = self._spreads.get(key)
        if spread is None:
            # stand-in queries of the same kind as the real one: passages for words, images for images
            stand_ins = items if query_modality == modality else self.get(catalog, generation, space, query_modality)
            spread = pair_spread(stand_ins, items)
            if not spread:  # nothing of the query's kind in this space: the query's own spread
                sims = items @ np.asarray(query, dtype=np.float32).reshape(-1) if len(items) > 1 else np.ones(1)
                spread = max(float(sims.std()), 1e-3)
            with self._lock:
                if generation == self._generation:
                    self._spreads[key] = spread
        with self._lock:
            scripts = self._scripts.get((space, modality))
        background = background_of(query, items, spread, FLOORS.get((query_modality, modality), 0.0), scripts)
        if (query_modality, modality) == ("image", "image"):
            background = dataclasses.replace(background, same=SAME_PICTURE)
        return background


def keyword_bonus(bm25: float, best_bm25: float, coverage: float, phrase: bool, title: float) -> float:
    """Keyword evidence of one passage, in z units."""
    normalised = bm25 / best_bm25 if best_bm25 > 0 else 0.0
    # squared shares: a passage holding half of the query's words says something else
    return (W_BM25 * normalised * coverage + W_COVERAGE * coverage ** 2 + W_PHRASE * phrase
            + W_TITLE * title ** 2)


def term_coverage(terms: list[str], text: str) -> float:
    """The share of the query's words that appear in ``text``: whole words for Latin script,
    where a CJK neighbour ends a word as a space does ("lora" in "用LoRA微调", as snippets mark
    it), anywhere for Chinese."""
    if not terms:
        return 0.0
    lowered = text.lower()
    # a letter or digit continues a Latin word, unless it is CJK (str.isalnum() is true for 用)
    def continues(i: int) -> bool:
        return 0 <= i < len(lowered) and lowered[i].isalnum() and not _CJK.match(lowered[i])

    found = 0
    for term in terms:
        start = lowered.find(term)
        while start >= 0:
            if not term.isascii() or not (continues(start - 1) or continues(start + len(term))):
                found += 1
                break
            start = lowered.find(term, start + 1)
    return found / len(terms)


def has_phrase(query: str, text: str) -> bool:
    """The query (two words or more, whitespace squeezed) appears as it is in the text."""
    phrase = " ".join(query.lower().split())
    if len(phrase) < 4 or (" " not in phrase and phrase.isascii()):
        return False
    return phrase in " ".join(text.lower().split())


# -- near-duplicates --------------------------------------------------------------------


def dhash(image, size: int = 8) -> int:
    """A 64-bit difference hash: survives resizing and re-encoding, not a different picture."""
    from PIL import Image

    grey = image.convert("L").resize((size + 1, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).reshape(-1)
    return int("".join("1" if b else "0" for b in bits), 2)


class PerceptualHashes:
    """dHash of indexed images, from their thumbnails, remembered by content hash."""

    def __init__(self, thumb_path, limit: int = 100_000):
        self.thumb_path = thumb_path
        self.limit = limit
        self._hashes: dict[str, int | None] = {}
        self._lock = threading.Lock()

    def get(self, content_hash: str) -> int | None:
        with self._lock:
            if content_hash in self._hashes:
                return self._hashes[content_hash]
        value = None
        path: Path = self.thumb_path(content_hash)
        try:
            from PIL import Image

            with Image.open(path) as im:
                value = dhash(im)
        except (OSError, ValueError):
            value = None
        with self._lock:
            if len(self._hashes) >= self.limit:
                self._hashes.clear()
            self._hashes[content_hash] = value
        return value


def duplicate_groups(ids: list[int], content_hash: dict[int, str], vectors: dict[int, np.ndarray],
                     phash) -> dict[int, list[int]]:
    """Fold images that are the same picture into the best-ranked one.

    ``ids`` best first. Two images are copies when their files hold the same bytes, or when
    their CLIP vectors are close (a cheap gate) and their difference hashes differ in at
    most ``DUPLICATE_HASH_BITS`` of 64 bits (resized, re-encoded or re-saved copies).
    Returns {kept id: [folded ids...]} for every id kept (those without copies map to [])."""
    groups: dict[int, list[int]] = {}
    kept: list[int] = []
    by_hash: dict[str, int] = {}
    for i in ids:
        digest = content_hash.get(i)
        if digest and digest in by_hash:
            groups[by_hash[digest]].append(i)
            continue
        owner = None
        vec = vectors.get(i)
        if vec is not None:
            for k in kept:
                other = vectors.get(k)
                if other is None or float(np.dot(vec, other)) < DUPLICATE_COSINE:
                    continue
                a, b = phash(content_hash.get(i, "")), phash(content_hash.get(k, ""))
                if a is not None and b is not None and bin(a ^ b).count("1") <= DUPLICATE_HASH_BITS:
                    owner = k
                    break
        if owner is not None:
            groups[owner].append(i)
            continue
        kept.append(i)
        groups[i] = []
        if digest:
            by_hash[digest] = i
    return groups
