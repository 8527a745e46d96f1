"""`searchd eval`: judgements in, recall@k / MRR / nDCG out.

A judgements file is JSON Lines: one query per line, each a JSON object. Blank lines and
lines starting with ``//`` or ``#`` are comments.

    # paths are relative to the folder that was indexed (the root, see below)
    {"root": ".."}
    {"query": "a red circle", "mode": "text-image", "lang": "en",
     "relevant": ["images/shapes/red-circle-1.png", "images/shapes/red-circle-2.png"]}
    {"image": "images/shapes/blue-square-1.png", "mode": "image-text",
     "relevant": ["docs/shapes/blue-square.md"], "grades": {"docs/shapes/blue-square.md": 2}}
    {"query": "how do I compress vectors to save memory", "mode": "text-all",
     "relevant": ["docs/product-quantization.md"], "none_of": "image"}
    {"query": "a pink hexagon", "mode": "text-image", "relevant": []}

Fields of a query line (any other key is an error, so a typo cannot go unnoticed):

``query`` or ``image``
    the words to search with, or the path of an image file to search by (exactly one).
``mode``
    one of the engine's modes; default ``text-all`` for words and ``image-all`` for an image.
``lang``
    optional language tag; results are reported per mode and per language.
``relevant``
    the files a person would want for this query, in any order. An empty list makes it
    a "no good answer" query (see ``none_of``).
``grades``
    optional graded relevance, ``{"path": grade}`` with grades 0-3 (1 when only listed in
    ``relevant``; a path may appear in ``grades`` alone). Grade 0 means judged not relevant.
``none_of``
    ``image``, ``text`` or ``any``: the kind of hit no good answer exists for. Such a query is
    scored by ``empty@10``, the share of them whose first ten hits hold nothing of that kind
    (``any``: no hit at all). A query with an empty ``relevant`` list gets the kind its mode
    searches (``image`` for ``*-image``, ``text`` for ``*-text``, ``any`` for ``*-all``); a
    query with relevant files may name one too, e.g. a ``text-all`` query with good passages
    but no good picture.
``id``
    optional name for the query in reports (default ``FILE:LINE``, the file as given).

A header line ``{"root": "DIR"}`` before the first query says which folder the paths are
relative to, itself relative to the judgements file; without one it is the file's own folder,
and ``searchd eval --root DIR`` overrides both. The root is the folder that was indexed: a
hit under it counts as the judged file when its path relative to the root is the judged one;
a hit outside it (the same folder indexed from a copy elsewhere) matches by its trailing path
components, so ``docs/bert.md`` matches ``/elsewhere/docs/bert.md`` but not ``.../xbert.md``.

An image query loads its file from the root through the engine's upload loader (the same
decoding, limits and encoder as an upload to the API), and the query image itself is left
out of its results: finding itself says nothing, so an image-image query from one picture is
judged on the other pictures of the same thing.

Metrics, per query, over the hits the engine returns as a user gets them (its relevance
floor applies unless ``weak`` is asked for, near-duplicate images are folded; a file counts
once, at its best rank):

``recall@k``  relevant files in the first k hits / relevant files
``mrr``       1 / rank of the first relevant hit in the first 10 (or the deepest k); 0 if none
``ndcg@10``   DCG of the grades in the first 10 hits (gain = grade, discount log2(rank + 1))
              over the DCG of the ideal order
``empty@10``  for ``none_of`` queries: 1 when the first 10 hits hold nothing of that kind

A group's figure is the mean over its queries: ranking figures over queries with relevant
files, ``empty@10`` over the ``none_of`` queries, so a relevance floor is judged on both
without one hiding the other.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from indexer.errors import BadRequestError, UnsupportedMediaError
from indexer.scan import kind_of

MODES = ("text-image", "text-text", "text-all", "image-image", "image-text", "image-all")
#: the kind of hit each mode returns; None: both
MODE_KIND = {"text-image": "image", "image-image": "image", "text-text": "text", "image-text": "text",
             "text-all": None, "image-all": None}
NONE_OF = ("image", "text", "any")
DEFAULT_KS = (1, 5, 10)
PAGE = 10  # nDCG and empty are measured on the first page
MAX_GRADE = 3
FIELDS = frozenset({"query", "image", "mode", "lang", "relevant", "grades", "none_of", "id"})
ALL = "all"


class JudgementError(BadRequestError):
    """A judgements file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Judgement:
    source: str                 # "FILE:LINE", where errors and reports point
    mode: str
    text: str | None
    image: str | None           # path of the query image, relative to the root
    grades: Mapping[str, int]   # judged path (relative to the root) -> grade; > 0 is relevant
    none_of: str | None
    lang: str = ""
    id: str = ""

    @property
    def relevant(self) -> dict[str, int]:
        return {path: grade for path, grade in self.grades.items() if grade > 0}

    @property
    def label(self) -> str:
        return self.text if self.text is not None else f"[image] {self.image}"


@dataclass(frozen=True)
class JudgementSet:
    path: Path
    root: Path
    judgements: tuple[Judgement, ...]


# --- reading judgements -----------------------------------------------------------------

def parse_judgements(text: str, source: str = "<judgements>") -> tuple[str | None, list[Judgement]]:
    """The header root (or None) and the judgements of one file's text.

    Raises JudgementError naming ``source`` and the line for the first bad line."""
    root: str | None = None
    judgements: list[Judgement] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "//")):
            continue
        where = f"{source}:{number}"
        try:
            record = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise JudgementError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise JudgementError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if "root" in record and "query" not in record and "image" not in record:
            if set(record) != {"root"} or not isinstance(record["root"], str):
                raise JudgementError(f'{where}: a header line is {{"root": "DIR"}} and nothing else')
            if judgements or root is not None:
                raise JudgementError(f"{where}: the root header must come before the first query")
            root = record["root"]
            continue
        judgements.append(_judgement(record, where))
    return root, judgements


def _relative_path(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise JudgementError(f"{where}: {what} must be a non-empty path string, got {value!r}")
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or value.startswith("~"):
        raise JudgementError(f"{where}: {what} {value!r} must be relative to the root, without '..'")
    return str(path)


def _judgement(record: dict, where: str) -> Judgement:
    unknown = sorted(set(record) - FIELDS)
    if unknown:
        raise JudgementError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(sorted(FIELDS))}")
    text, image = record.get("query"), record.get("image")
    if (text is None) == (image is None):
        raise JudgementError(f'{where}: give exactly one of "query" (words) or "image" (a file)')
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise JudgementError(f"{where}: query must be non-empty text")
    if image is not None:
        image = _relative_path(image, where, "image")
    mode = record.get("mode", "text-all" if text is not None else "image-all")
    if mode not in MODES:
        raise JudgementError(f"{where}: unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if mode.startswith("text-") != (text is not None):
        raise JudgementError(f"{where}: mode {mode} searches with "
                             f"{'words' if mode.startswith('text-') else 'an image'}: give "
                             f"{'query' if mode.startswith('text-') else 'image'}")
    lang = record.get("lang", "")
    if not isinstance(lang, str):
        raise JudgementError(f"{where}: lang must be a string such as \"en\"")

    relevant = record.get("relevant")
    if relevant is None and "grades" not in record:
        raise JudgementError(f'{where}: "relevant" is missing (an empty list means no good answer)')
    if relevant is not None and not isinstance(relevant, list):
        raise JudgementError(f"{where}: relevant must be a list of paths")
    grades: dict[str, int] = {_relative_path(p, where, "relevant path"): 1 for p in relevant or []}
    raw_grades = record.get("grades", {})
    if not isinstance(raw_grades, dict):
        raise JudgementError(f'{where}: grades must be an object {{"path": grade}}')
    for path, grade in raw_grades.items():
        if isinstance(grade, bool) or not isinstance(grade, int) or not 0 <= grade <= MAX_GRADE:
            raise JudgementError(f"{where}: the grade of {path!r} must be a whole number 0-{MAX_GRADE}")
        grades[_relative_path(path, where, "graded path")] = grade
    searched = MODE_KIND[mode]
    for path, grade in grades.items():
        kind = kind_of(path)
        if kind is None:
            raise JudgementError(f"{where}: {path!r} is not a file kind searchd indexes")
        if searched is not None and kind != searched and grade > 0:
            raise JudgementError(f"{where}: {path!r} is {'an image' if kind == 'image' else 'a text'}, "
                                 f"but mode {mode} only returns {searched}s")
    if image is not None and image in grades:
        raise JudgementError(f"{where}: the query image is left out of its own results; "
                             f"it cannot be judged relevant")

    none_of = record.get("none_of")
    if none_of is not None and none_of not in NONE_OF:
        raise JudgementError(f"{where}: none_of must be one of {', '.join(NONE_OF)}, not {none_of!r}")
    if none_of in ("image", "text") and searched is not None and none_of != searched:
        raise JudgementError(f"{where}: none_of {none_of}, but mode {mode} never returns {none_of}s")
    relevant_kinds = {kind_of(p) for p, g in grades.items() if g > 0}
    if (none_of == "any" and relevant_kinds) or none_of in relevant_kinds:
        raise JudgementError(f"{where}: none_of {none_of} contradicts the relevant files")
    if none_of is None and not relevant_kinds:
        none_of = searched or "any"
    ident = record.get("id", "")
    if not isinstance(ident, str):
        raise JudgementError(f"{where}: id must be a string")
    return Judgement(source=where, mode=mode, text=text, image=image, grades=grades, none_of=none_of,
                     lang=lang, id=ident or where)


def load_judgements(path: str | os.PathLike, root: str | os.PathLike | None = None) -> JudgementSet:
    """Read one judgements file; ``root`` overrides the file's header root.

    Checks that every query image and judged file exists under the root, so a typo fails
    before any model runs."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JudgementError(f"no such judgements file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JudgementError(f"cannot read {path}: {exc}") from None
    header_root, judgements = parse_judgements(text, source=str(path))
    if root is not None:
        base = Path(os.path.abspath(root))
    else:
        base = Path(os.path.abspath(path.parent / (header_root or ".")))
    if not base.is_dir():
        raise JudgementError(f"{path}: the root {base} is not a folder")
    for j in judgements:
        if j.image is not None and not (base / j.image).is_file():
            raise JudgementError(f"{j.source}: the query image {j.image} is not under {base}")
        missing = [p for p in j.grades if not (base / p).is_file()]
        if missing:
            raise JudgementError(f"{j.source}: judged {', '.join(missing)} not under {base}")
    return JudgementSet(path=path, root=base, judgements=tuple(judgements))


# --- metrics ----------------------------------------------------------------------------

def _first_seen(ranked: Sequence[str | None]) -> list[str | None]:
    """A file counts once, at its best rank: later repeats become misses."""
    seen: set[str] = set()
    out: list[str | None] = []
    for key in ranked:
        out.append(None if key is None or key in seen else key)
        if key is not None:
            seen.add(key)
    return out


def recall_at_k(ranked: Sequence[str | None], relevant: Collection[str], k: int) -> float:
    """Share of ``relevant`` found in the first ``k`` of ``ranked``."""
    if not relevant:
        raise ValueError("recall needs at least one relevant item")
    return len({key for key in ranked[:k] if key in relevant}) / len(set(relevant))


def reciprocal_rank(ranked: Sequence[str | None], relevant: Collection[str], depth: int | None = None) -> float:
    """1 / rank (1-based) of the first relevant item within ``depth``; 0 when there is none."""
    for rank, key in enumerate(ranked[:depth], start=1):
        if key is not None and key in relevant:
            return 1.0 / rank
    return 0.0


def dcg(gains: Sequence[float]) -> float:
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def ndcg_at_k(ranked: Sequence[str | None], grades: Mapping[str, float], k: int = PAGE) -> float:
    """DCG of the first ``k`` over the ideal DCG (gain = grade, discount log2(rank + 1))."""
    ideal = dcg(sorted((g for g in grades.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        raise ValueError("nDCG needs at least one relevant item")
    return dcg([grades.get(key, 0) if key is not None else 0 for key in _first_seen(ranked)[:k]]) / ideal


def empty_at_k(kinds: Sequence[str], none_of: str, k: int = PAGE) -> bool:
    """True when the first ``k`` hits hold nothing of the kind ``none_of`` (``any``: no hits)."""
    return not any(none_of == "any" or kind == none_of for kind in kinds[:k])


# --- matching hits to judged paths ------------------------------------------------------

def hit_key(path: str, root: Path, judged: Collection[str]) -> str | None:
    """The judged path a hit's absolute path stands for, or None.

    Under the root: the path relative to it, when judged. Elsewhere: the judged path whose
    components the hit's path ends with (the longest, should several)."""
    root_str = str(root)
    if path.startswith(root_str.rstrip(os.sep) + os.sep):
        rel = PurePosixPath(*Path(os.path.relpath(path, root_str)).parts).as_posix()
        return rel if rel in judged else None
    parts = Path(path).parts
    best = None
    for candidate in judged:
        tail = PurePosixPath(candidate).parts
        if len(tail) <= len(parts) and tuple(parts[-len(tail):]) == tail:
            if best is None or len(tail) > len(PurePosixPath(best).parts):
                best = candidate
    return best


# --- running ----------------------------------------------------------------------------

@dataclass
class Outcome:
    """One judged query, searched and scored."""

    judgement: Judgement
    hits: list[tuple[str, str]]         # (path, kind) best first, the query image left out
    ranks: dict[str, int]               # relevant path -> 1-based rank where it was found
    metrics: dict[str, float | None]
    took_ms: float = 0.0


def score(judgement: Judgement, keys: Sequence[str | None], kinds: Sequence[str],
          ks: Sequence[int] = DEFAULT_KS) -> tuple[dict[str, int], dict[str, float | None]]:
    """Ranks found and metrics of one query, from the judged key and kind of each hit."""
    relevant = judgement.relevant
    keys = _first_seen(keys)
    ranks = {key: rank for rank, key in enumerate(keys, start=1) if key is not None and key in relevant}
    metrics: dict[str, float | None] = {}
    depth = max(max(ks), PAGE)
    for k in ks:
        metrics[f"recall@{k}"] = recall_at_k(keys, relevant, k) if relevant else None
    metrics["mrr"] = reciprocal_rank(keys, relevant, depth) if relevant else None
    metrics[f"ndcg@{PAGE}"] = ndcg_at_k(keys, relevant, PAGE) if relevant else None
    metrics[f"empty@{PAGE}"] = (float(empty_at_k(kinds, judgement.none_of, PAGE))
                                if judgement.none_of else None)
    return ranks, metrics


def run_judgements(engine, sets: Sequence[JudgementSet], *, fusion: str = "calibrated",
                   ks: Sequence[int] = DEFAULT_KS, weak: bool = False) -> list[Outcome]:
    """Search every judged query through ``engine`` and score it."""
    from searchd.engine import Query

    depth = max(max(ks), PAGE)
    outcomes = []
    for jset in sets:
        for j in jset.judgements:
            judged = set(j.grades) | ({j.image} if j.image else set())
            started = time.perf_counter()
            try:
                image = engine.load_upload((jset.root / j.image).read_bytes()) if j.image else None
                result = engine.search(Query(mode=j.mode, text=j.text, image=image,
                                             k=depth + (1 if j.image else 0), fusion=fusion, weak=weak))
            except (BadRequestError, UnsupportedMediaError) as exc:
                raise JudgementError(f"{j.source}: the engine refused this query: {exc}") from None
            took_ms = (time.perf_counter() - started) * 1000
            hits, keys = [], []
            for hit in result.hits:
                key = hit_key(hit.path, jset.root, judged)
                if j.image is not None and key == j.image:
                    continue
                hits.append((hit.path, hit.kind))
                keys.append(key)
            hits, keys = hits[:depth], keys[:depth]
            ranks, metrics = score(j, keys, [kind for _, kind in hits], ks)
            outcomes.append(Outcome(j, hits, ranks, metrics, took_ms))
    return outcomes


# --- reporting --------------------------------------------------------------------------

def metric_names(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    return [f"recall@{k}" for k in ks] + ["mrr", f"ndcg@{PAGE}", f"empty@{PAGE}"]


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _group(mode: str, lang: str, outcomes: list[Outcome], ks: Sequence[int]) -> dict[str, Any]:
    ranked = [o for o in outcomes if o.judgement.relevant]
    none = [o for o in outcomes if o.judgement.none_of]
    row: dict[str, Any] = {"mode": mode, "lang": lang or None, "queries": len(outcomes),
                           "judged": len(ranked), "no_answer": len(none)}
    for name in metric_names(ks):
        pool = none if name.startswith("empty@") else ranked
        row[name] = _mean([o.metrics[name] for o in pool])
    return row


def summarize(outcomes: Sequence[Outcome], ks: Sequence[int] = DEFAULT_KS) -> list[dict[str, Any]]:
    """One row per (mode, language), a row per mode over its languages when it has several,
    and an overall row (mode and lang "all")."""
    rows = []
    for mode in MODES:
        in_mode = [o for o in outcomes if o.judgement.mode == mode]
        langs = sorted({o.judgement.lang for o in in_mode})
        for lang in langs:
            rows.append(_group(mode, lang, [o for o in in_mode if o.judgement.lang == lang], ks))
        if len(langs) > 1:
            rows.append(_group(mode, ALL, in_mode, ks))
    langs = sorted({o.judgement.lang for o in outcomes})
    if len(langs) > 1:
        for lang in langs:
            rows.append(_group(ALL, lang, [o for o in outcomes if o.judgement.lang == lang], ks))
    rows.append(_group(ALL, ALL, list(outcomes), ks))
    return rows


def report(outcomes: Sequence[Outcome], *, fusion: str, ks: Sequence[int] = DEFAULT_KS,
           sets: Sequence[JudgementSet] = ()) -> dict[str, Any]:
    """The machine-readable report behind ``searchd eval --json``."""
    return {
        "fusion": fusion,
        "k": list(ks),
        "judgements": [str(s.path) for s in sets],
        "groups": summarize(outcomes, ks),
        "queries": [{"id": o.judgement.id, "mode": o.judgement.mode, "lang": o.judgement.lang or None,
                     "query": o.judgement.label, "relevant": len(o.judgement.relevant),
                     "none_of": o.judgement.none_of, "found": o.ranks,
                     **{k: v for k, v in o.metrics.items() if v is not None},
                     "top": [path for path, _ in o.hits[:3]], "took_ms": round(o.took_ms, 1)}
                    for o in outcomes],
    }


def _cell(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.2f}"


def column_title(name: str) -> str:
    """``recall@5`` -> ``R@5``, ``mrr`` -> ``MRR``, ``ndcg@10`` -> ``nDCG@10``."""
    return name.replace("recall@", "R@").replace("mrr", "MRR").replace("ndcg@", "nDCG@")


def row_label(row: Mapping[str, Any]) -> str:
    """The mode, language, and query counts that start a table row."""
    return f"{row['mode']:<12} {row['lang'] or '-':<6} {row['judged']:>3} {row['no_answer']:>4}  "


def format_table(rows: Sequence[Mapping[str, Any]], ks: Sequence[int] = DEFAULT_KS) -> str:
    """The groups as an aligned text table; ``-`` where a group has no query to measure."""
    names = metric_names(ks)
    widths = [max(5, len(column_title(n))) for n in names]
    head = row_label({"mode": "mode", "lang": "lang", "judged": "n", "no_answer": "none"})
    lines = [head + "  ".join(f"{column_title(n):>{w}}" for n, w in zip(names, widths))]
    for row in rows:
        lines.append(row_label(row) + "  ".join(f"{_cell(row[n]):>{w}}" for n, w in zip(names, widths)))
    return "\n".join(lines)


def format_queries(outcomes: Sequence[Outcome]) -> str:
    """One line per query: where its relevant files were found, or what came first instead."""
    lines = []
    width = max((len(o.judgement.source) for o in outcomes), default=0)
    for o in outcomes:
        j = o.judgement
        if j.relevant:
            missing = [p for p in j.relevant if p not in o.ranks]
            found = ", ".join(f"{p}@{r}" for p, r in sorted(o.ranks.items(), key=lambda kv: kv[1]))
            verdict = f"found {found or 'nothing'}" + (f"; missed {', '.join(missing)}" if missing else "")
        else:
            verdict = ""
        if j.none_of:
            ok = o.metrics[f"empty@{PAGE}"]
            verdict += ("; " if verdict else "") + (f"no {j.none_of} on page 1" if ok else
                                                   f"{j.none_of} on page 1: " + ", ".join(
                                                       Path(p).name for p, kind in o.hits[:PAGE]
                                                       if j.none_of in ("any", kind))[:120])
        top = ", ".join(Path(p).name for p, _ in o.hits[:3]) or "no hits"
        lines.append(f"{j.source:<{width}} {j.mode:<11} {j.label[:48]!r:<50} {verdict}  [top: {top}]")
    return "\n".join(lines)
