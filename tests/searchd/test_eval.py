"""searchd eval: the metrics on hand-made rankings, the judgement parser, and scoring a run."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from searchd.eval import (JudgementError, empty_at_k, format_table, hit_key, load_judgements, ndcg_at_k,
                          parse_judgements, recall_at_k, reciprocal_rank, report, run_judgements, summarize)

LOG3 = math.log2(3)


# --- metrics ----------------------------------------------------------------------------

def test_recall_counts_each_relevant_file_once_within_k():
    ranked = ["a", None, "b", "a", "c"]
    relevant = {"a", "b", "x"}
    assert recall_at_k(ranked, relevant, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, relevant, 3) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, relevant, 10) == pytest.approx(2 / 3)  # the repeated "a" adds nothing
    assert recall_at_k([], relevant, 10) == 0.0


def test_reciprocal_rank_is_one_over_the_first_relevant_rank_within_depth():
    assert reciprocal_rank(["a", "b"], {"a"}) == 1.0
    assert reciprocal_rank([None, "x", "b", "a"], {"a", "b"}) == pytest.approx(1 / 3)
    assert reciprocal_rank([None, "x", "b"], {"b"}, depth=2) == 0.0
    assert reciprocal_rank([None, None], {"b"}) == 0.0


def test_ndcg_uses_grades_as_gains_and_the_ideal_order():
    grades = {"a": 2, "b": 1}
    assert ndcg_at_k(["a", "b"], grades) == 1.0
    # b then a: (1/log2(2) + 2/log2(3)) / (2/log2(2) + 1/log2(3))
    assert ndcg_at_k(["b", "a"], grades) == pytest.approx((1 + 2 / LOG3) / (2 + 1 / LOG3))
    assert ndcg_at_k(["b", "a"], grades) == pytest.approx(0.85972, abs=1e-5)
    # one relevant file at rank 3 out of a binary pair: (1/2) / (1 + 1/log2(3))
    assert ndcg_at_k([None, "x", "a"], {"a": 1, "b": 1}) == pytest.approx(0.5 / (1 + 1 / LOG3))
    # past the cut-off counts nothing, and a repeat is no second gain
    assert ndcg_at_k([None] * 10 + ["a"], {"a": 1}) == 0.0
    assert ndcg_at_k(["a", "a"], {"a": 1, "b": 1}) == pytest.approx(1 / (1 + 1 / LOG3))
    # grade 0 is judged not relevant: no gain, not in the ideal
    assert ndcg_at_k(["z", "a"], {"a": 1, "z": 0}) == pytest.approx(1 / LOG3)


def test_metrics_refuse_a_query_without_relevant_files():
    with pytest.raises(ValueError):
        recall_at_k(["a"], set(), 10)
    with pytest.raises(ValueError):
        ndcg_at_k(["a"], {"a": 0})


def test_empty_at_k_looks_at_the_kind_on_the_first_page():
    assert empty_at_k(["text", "text"], "image")
    assert not empty_at_k(["text", "image"], "image")
    assert empty_at_k(["text"] * 10 + ["image"], "image")  # rank 11 is off the first page
    assert empty_at_k([], "any") and not empty_at_k(["text"], "any")


# --- the judgement format ---------------------------------------------------------------

GOOD = """\
# a comment
// another comment
{"root": "corpus"}

{"query": "a red circle", "mode": "text-image", "lang": "en", "relevant": ["shapes/red-circle-1.png"]}
{"query": "vectors", "grades": {"docs/pq.md": 2, "docs/faiss.md": 1, "docs/bert.md": 0}, "none_of": "image"}
{"image": "shapes/blue-square-1.png", "mode": "image-text", "relevant": [], "id": "blue"}
{"query": "weather", "mode": "text-all", "relevant": []}
"""


def test_a_judgements_file_parses_with_defaults():
    root, (circle, vectors, blue, weather) = parse_judgements(GOOD, "qrels.jsonl")
    assert root == "corpus"
    assert circle.mode == "text-image" and circle.lang == "en" and circle.relevant == {"shapes/red-circle-1.png": 1}
    assert circle.none_of is None and circle.id == "qrels.jsonl:5"
    assert vectors.mode == "text-all" and vectors.relevant == {"docs/pq.md": 2, "docs/faiss.md": 1}
    assert vectors.none_of == "image"
    assert blue.image == "shapes/blue-square-1.png" and blue.none_of == "text" and blue.id == "blue"
    assert weather.none_of == "any"  # an empty list in an *-all mode: no good hit of any kind


@pytest.mark.parametrize("line, needle", [
    ('{"query": "x", "relevant": ["a.md"]', "not valid JSON"),
    ('["a.md"]', "expected a JSON object"),
    ('{"query": "x", "relevent": ["a.md"]}', "unknown field(s) 'relevent'"),
    ('{"query": "x", "image": "a.png", "relevant": []}', "exactly one of"),
    ('{"query": "x"}', '"relevant" is missing'),
    ('{"query": "  ", "relevant": []}', "non-empty text"),
    ('{"query": "x", "mode": "image-text", "relevant": []}', "give image"),
    ('{"query": "x", "mode": "sideways", "relevant": []}', "unknown mode 'sideways'"),
    ('{"query": "x", "mode": "text-image", "relevant": ["docs/a.md"]}', "only returns images"),
    ('{"query": "x", "relevant": ["notes.xyz"]}', "not a file kind"),
    ('{"query": "x", "relevant": ["/etc/a.md"]}', "relative to the root"),
    ('{"query": "x", "relevant": ["../a.md"]}', "relative to the root"),
    ('{"query": "x", "grades": {"a.md": 7}}', "whole number 0-3"),
    ('{"query": "x", "mode": "text-text", "relevant": [], "none_of": "image"}', "never returns images"),
    ('{"query": "x", "relevant": ["a.png"], "none_of": "image"}', "contradicts"),
    ('{"query": "x", "relevant": [], "none_of": "video"}', "none_of must be one of"),
    ('{"image": "a.png", "mode": "image-image", "relevant": ["a.png"]}', "own results"),
    ('{"root": "x", "extra": 1}', "header line"),
])
def test_a_bad_line_is_a_clear_error_naming_the_file_and_line(line, needle):
    text = '# judgements\n{"query": "fine", "relevant": []}\n' + line + "\n"
    with pytest.raises(JudgementError) as exc:
        parse_judgements(text, "bad.jsonl")
    assert str(exc.value).startswith("bad.jsonl:3: ") and needle in str(exc.value), str(exc.value)


def test_the_root_header_must_come_first():
    with pytest.raises(JudgementError, match="bad.jsonl:2: the root header must come before"):
        parse_judgements('{"query": "x", "relevant": []}\n{"root": ".."}\n', "bad.jsonl")


def _corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    for name in ("docs/pq.md", "docs/faiss.md", "docs/bert.md", "shapes/red-circle-1.png",
                 "shapes/blue-square-1.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    return root


def test_paths_are_relative_to_the_root_header_or_the_command_line(tmp_path):
    root = _corpus(tmp_path)
    (tmp_path / "qrels").mkdir()
    path = tmp_path / "qrels" / "q.jsonl"
    path.write_text(GOOD.replace('"corpus"', '"../corpus"'))
    assert load_judgements(path).root == root
    path.write_text(GOOD.replace('{"root": "corpus"}', ""))
    with pytest.raises(JudgementError, match=r"q.jsonl:5: judged shapes/red-circle-1.png not under"):
        load_judgements(path)  # no header: the file's own folder
    assert load_judgements(path, root=root).root == root


def test_a_judged_file_missing_from_the_root_is_an_error(tmp_path):
    _corpus(tmp_path)
    path = tmp_path / "q.jsonl"
    path.write_text('{"root": "corpus"}\n{"query": "x", "relevant": ["docs/typo.md"]}\n')
    with pytest.raises(JudgementError, match=r"q.jsonl:2: judged docs/typo.md not under"):
        load_judgements(path)
    with pytest.raises(JudgementError, match="no such judgements file"):
        load_judgements(tmp_path / "nope.jsonl")


def test_hits_match_judged_paths_under_the_root_or_by_trailing_components(tmp_path):
    root = tmp_path / "corpus"
    judged = {"docs/bert.md", "bert.md"}
    assert hit_key(str(root / "docs" / "bert.md"), root, judged) == "docs/bert.md"
    assert hit_key(str(root / "other" / "docs" / "bert.md"), root, judged) is None  # under the root: exact
    assert hit_key("/copy/of/corpus/docs/bert.md", root, judged) == "docs/bert.md"  # longest trailing match
    assert hit_key("/copy/of/corpus/docs/xbert.md", root, judged) is None
    assert hit_key(str(tmp_path / "corpus-2" / "bert.md"), root, judged) == "bert.md"  # a sibling is not under


# --- a run over a fake engine -----------------------------------------------------------

@dataclass
class FakeHit:
    path: str
    kind: str
    score: float = 0.5


@dataclass
class FakeResult:
    hits: list


class FakeEngine:
    """Answers each query with a fixed list of paths relative to the root."""

    def __init__(self, root: Path, answers: dict):
        self.root, self.answers, self.queries = root, answers, []

    def load_upload(self, data: bytes):
        return f"image of {len(data)} bytes"

    def search(self, q):
        self.queries.append(q)
        key = q.text if q.text is not None else q.mode
        hits = [FakeHit(str(self.root / p), "image" if p.endswith(".png") else "text") for p in self.answers[key]]
        return FakeResult(hits[:q.k])


def test_a_run_scores_every_query_and_groups_by_mode_and_language(tmp_path):
    root = _corpus(tmp_path)
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"root": "corpus"},
        {"query": "pq", "mode": "text-text", "lang": "en", "grades": {"docs/pq.md": 2, "docs/faiss.md": 1}},
        {"query": "积", "mode": "text-text", "lang": "zh", "relevant": ["docs/pq.md"]},
        {"query": "nothing", "mode": "text-text", "lang": "en", "relevant": []},
        {"image": "shapes/red-circle-1.png", "mode": "image-all", "relevant": ["docs/bert.md"], "none_of": "image"},
    ]))
    engine = FakeEngine(root, {
        "pq": ["docs/faiss.md", "docs/pq.md"],
        "积": ["docs/bert.md"],
        "nothing": [],
        # the query image comes back first (it is indexed): it is left out, not a miss
        "image-all": ["shapes/red-circle-1.png", "docs/bert.md", "shapes/blue-square-1.png"],
    })
    outcomes = run_judgements(engine, [load_judgements(path)], fusion="rrf", ks=(1, 5))
    assert [q.fusion for q in engine.queries] == ["rrf"] * 4
    assert [q.k for q in engine.queries] == [10, 10, 10, 11]  # one extra for the image left out
    pq, zh, nothing, image = outcomes
    assert pq.ranks == {"docs/faiss.md": 1, "docs/pq.md": 2}
    assert pq.metrics["recall@1"] == 0.5 and pq.metrics["mrr"] == 1.0
    assert pq.metrics["ndcg@10"] == pytest.approx((1 + 2 / LOG3) / (2 + 1 / LOG3))
    assert zh.metrics["recall@5"] == 0.0 and zh.metrics["mrr"] == 0.0
    assert nothing.metrics["empty@10"] == 1.0 and nothing.metrics["mrr"] is None
    assert [p for p, _ in image.hits] == [str(root / "docs/bert.md"), str(root / "shapes/blue-square-1.png")]
    assert image.ranks == {"docs/bert.md": 1} and image.metrics["empty@10"] == 0.0

    rows = {(r["mode"], r["lang"]): r for r in summarize(outcomes, (1, 5))}
    assert set(rows) == {("text-text", "en"), ("text-text", "zh"), ("text-text", "all"), ("image-all", None),
                         ("all", "en"), ("all", "zh"), ("all", None), ("all", "all")}
    en = rows[("text-text", "en")]
    assert (en["queries"], en["judged"], en["no_answer"]) == (2, 1, 1)
    assert en["recall@1"] == 0.5 and en["empty@10"] == 1.0
    both = rows[("text-text", "all")]
    assert both["recall@5"] == 0.5 and both["mrr"] == 0.5
    assert rows[("all", "all")]["empty@10"] == 0.5  # one of the two none_of queries kept its page clean

    out = report(outcomes, fusion="rrf", ks=(1, 5))
    assert out["fusion"] == "rrf" and out["k"] == [1, 5]
    assert out["queries"][0]["found"] == {"docs/faiss.md": 1, "docs/pq.md": 2}
    json.dumps(out)
    table = format_table(summarize(outcomes, (1, 5)), (1, 5))
    assert table.splitlines()[0].split() == ["mode", "lang", "n", "none", "R@1", "R@5", "MRR", "nDCG@10",
                                             "empty@10"]
    assert "text-text    zh       1    0   0.00   0.00   0.00     0.00         -" in table


def test_a_query_the_engine_refuses_names_its_line(tmp_path):
    from indexer.errors import BadRequestError

    _corpus(tmp_path)
    path = tmp_path / "q.jsonl"
    path.write_text('{"root": "corpus"}\n{"query": "x", "relevant": []}\n')

    class Refusing(FakeEngine):
        def search(self, q):
            raise BadRequestError("the query is longer than 1000 characters")

    with pytest.raises(JudgementError, match="q.jsonl:2: the engine refused this query: the query is longer"):
        run_judgements(Refusing(tmp_path, {}), [load_judgements(path)])
