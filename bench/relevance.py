"""Relevance over the sample judgements: calibrated fusion against reciprocal rank fusion.

    python bench/relevance.py                          # index sample_data/ into a temp dir (demo models)
    python bench/relevance.py --data-dir D             # reuse an index of sample_data/
    python bench/relevance.py --write-expected         # also record lower bounds for the e2e test
    python bench/relevance.py --data-dir D --floors    # measure the relevance floors instead

Runs every judgements file (default: sample_data/judgements/*.jsonl) through the engine once
per fusion method and prints, per mode and language, recall@1/5/10, MRR, nDCG@10 and empty@10
side by side (n: queries with relevant files; none: queries scored by empty@10). The same
figures come from `searchd eval FILES --fusion METHOD`.

--write-expected records sample_data/judgements/expected.json from the first --fusion's run:
per (mode, language) the nDCG@10, recall@10 and empty@10 measured, rounded down to a multiple
of 0.05 and lowered by --margin, so tests/e2e/test_cli.py fails when relevance drops, not when
it wobbles. Zero bounds are left out.

--floors measures searchd.ranking.FLOORS instead of comparing fusions: every judgement runs
once (calibrated, weak hits included, the query image left out) and each hit's z-score is
read back from its score (z = Z_SCALE * logit(score) + the pair's floor; for passages it
includes the keyword evidence). One line per (query kind, item kind) pair: the judged-relevant
files in the first 10 and their lowest and 10th-percentile z; the "no answer" queries that
forbid that kind (none_of) and the highest z of that kind in their first 10; the current
floor; and a suggested one: the highest no-answer z + 0.1 (pages of no-answer queries stay
clean), capped at the lowest relevant z (no judged-relevant hit is hidden), with the bound
that decided it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from searchd import eval as evaluation  # noqa: E402
from searchd import ranking  # noqa: E402
from searchd.cli_common import quiet_libraries  # noqa: E402
from searchd.engine import create_search_engine  # noqa: E402
from searchd.settings import load_settings  # noqa: E402

JUDGEMENTS = REPO / "sample_data" / "judgements"
EXPECTED = JUDGEMENTS / "expected.json"
RECORDED = ("ndcg@10", "recall@10", "empty@10")


def index_sample(data_dir: Path, models: str) -> None:
    env = {**os.environ, "SEARCHD_MODELS": models, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "searchd", "index", str(REPO / "sample_data"), "--data-dir",
                    str(data_dir)], check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    print(f"indexed sample_data/ into {data_dir} in {time.perf_counter() - started:.0f}s", file=sys.stderr)


def revision() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def side_by_side(runs: dict[str, list[dict]], ks) -> str:
    """One table, each metric's column split into one sub-column per fusion method."""
    names = evaluation.metric_names(ks)
    fusions = list(runs)
    width = 6 * len(fusions) - 1
    label = evaluation.row_label({"mode": "mode", "lang": "lang", "judged": "n", "no_answer": "none"})
    lines = [" " * len(label) + "  ".join(f"{evaluation.column_title(n):^{width}}" for n in names),
             label + "  ".join(" ".join(f"{f[:5]:>5}" for f in fusions) for _ in names)]
    for i, row in enumerate(runs[fusions[0]]):
        cells = [" ".join("    -" if runs[f][i][n] is None else f"{runs[f][i][n]:5.2f}" for f in fusions)
                 for n in names]
        lines.append(evaluation.row_label(row) + "  ".join(cells))
    return "\n".join(lines)


def z_of(score: float, pair: tuple[str, str]) -> float:
    """The z-score behind a hit's relevance: its margin above the pair's floor, plus the floor."""
    s = min(max(score, 1e-9), 1 - 1e-9)
    return ranking.Z_SCALE * math.log(s / (1 - s)) + ranking.FLOORS.get(pair, 0.0)


def measure_floors(engine, sets: list[evaluation.JudgementSet]) -> str:
    """Per (query kind, item kind): relevant and no-answer z-scores on page 1, and a floor between."""
    from searchd.engine import Query

    page = evaluation.PAGE
    relevant_z: dict[tuple[str, str], list[float]] = defaultdict(list)
    forbidden_z: dict[tuple[str, str], list[float]] = defaultdict(list)
    no_answer: dict[tuple[str, str], int] = defaultdict(int)
    for jset in sets:
        for j in jset.judgements:
            query_kind = "image" if j.mode.startswith("image-") else "text"
            image = engine.load_upload((jset.root / j.image).read_bytes()) if j.image else None
            result = engine.search(Query(mode=j.mode, text=j.text, image=image,
                                         k=page + (1 if j.image else 0), weak=True))
            judged = set(j.grades) | ({j.image} if j.image else set())
            hits, seen = [], set()
            for hit in result.hits:
                key = evaluation.hit_key(hit.path, jset.root, judged)
                if j.image is not None and key == j.image:
                    continue
                hits.append((hit, None if key in seen else key))  # a file counts once, at its best rank
                seen.add(key)
            worst: dict[str, float] = {}
            for hit, key in hits[:page]:
                pair = (query_kind, hit.kind)
                z = z_of(hit.score, pair)
                if key is not None and key in j.relevant:
                    relevant_z[pair].append(z)
                if j.none_of in ("any", hit.kind):
                    worst[hit.kind] = max(worst.get(hit.kind, -math.inf), z)
            if j.none_of:
                searched = evaluation.MODE_KIND[j.mode]
                for kind in ("image", "text"):
                    if j.none_of in ("any", kind) and searched in (None, kind):
                        no_answer[(query_kind, kind)] += 1
                        if kind in worst:
                            forbidden_z[(query_kind, kind)].append(worst[kind])

    def num(value: float | None) -> str:
        return "    -" if value is None else f"{value:5.2f}"

    lines = [f"{'pair':<14} {'rel':>4} {'min z':>5} {'p10 z':>5}  {'none':>4} {'max z':>5}  "
             f"{'floor':>5}  suggested"]
    pairs = list(ranking.FLOORS) + sorted((set(relevant_z) | set(no_answer)) - set(ranking.FLOORS))
    for pair in pairs:
        rel = relevant_z.get(pair, [])
        low = min(rel) if rel else None
        p10 = float(np.percentile(rel, 10)) if rel else None
        high = max(forbidden_z[pair]) if forbidden_z.get(pair) else None
        if high is not None and (low is None or high + 0.1 <= low):
            suggestion = f"{high + 0.1:5.2f} (no-answer max + 0.1)"
        elif high is not None:
            suggestion = f"{low:5.2f} (capped at the lowest relevant; no-answer wants {high + 0.1:.2f})"
        elif low is not None:
            suggestion = f"<= {low:.2f} (no no-answer hit of this kind; only the relevant bound)"
        else:
            suggestion = "-"
        floor = ranking.FLOORS.get(pair)
        lines.append(f"{pair[0] + '->' + pair[1]:<14} {len(rel):>4} {num(low)} {num(p10)}  "
                     f"{no_answer.get(pair, 0):>4} {num(high)}  {num(floor)}  {suggestion}")
    return "\n".join(lines)


def lower_bounds(rows: list[dict], margin: float) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        bounds = {}
        for name in RECORDED:
            value = row.get(name)
            if value is None:
                continue
            bound = round(math.floor(value * 20 + 1e-9) / 20 - margin, 2)
            if bound > 0:
                bounds[name] = bound
        if bounds:
            out[f"{row['mode']}/{row['lang'] or '-'}"] = bounds
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("judgements", nargs="*", type=Path,
                    help="judgements files (default: sample_data/judgements/*.jsonl)")
    ap.add_argument("--data-dir", type=Path,
                    help="an index of sample_data/ to reuse (default: index into a temp dir)")
    ap.add_argument("--models", default="demo", help="model preset (default: demo)")
    ap.add_argument("--fusion", default="calibrated,rrf", help="fusion methods to compare, comma-separated")
    ap.add_argument("--weak", action="store_true", help="also count hits below the relevance floor")
    ap.add_argument("--write-expected", nargs="?", const=EXPECTED, type=Path, metavar="PATH",
                    help="record lower bounds from the first fusion's figures "
                         f"(default path: {EXPECTED.relative_to(REPO)})")
    ap.add_argument("--margin", type=float, default=0.05, help="how far below the measured figure a bound sits")
    ap.add_argument("--floors", action="store_true",
                    help="measure the relevance floor of each (query kind, item kind) pair instead")
    args = ap.parse_args()
    if args.floors and args.write_expected:
        ap.error("--floors measures floors, not the figures --write-expected records; use one at a time")

    files = args.judgements or sorted(JUDGEMENTS.glob("*.jsonl"))
    try:
        sets = [evaluation.load_judgements(path) for path in files]
    except evaluation.JudgementError as exc:
        sys.exit(f"error: {exc}")
    fusions = [f.strip() for f in args.fusion.split(",") if f.strip()]
    ks = evaluation.DEFAULT_KS
    quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="searchd-relevance-") as tmp:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = Path(tmp) / "data"
            index_sample(data_dir, args.models)
        engine = create_search_engine(load_settings({"data_dir": data_dir, "models": args.models}))
        try:
            engine.warm_up()
            if args.floors:
                started = time.perf_counter()
                table = measure_floors(engine, sets)
                print(f"floors: {sum(len(s.judgements) for s in sets)} queries in "
                      f"{time.perf_counter() - started:.1f}s", file=sys.stderr)
                print(f"relevance floors (z of the first {evaluation.PAGE} hits, weak hits included), "
                      f"models {args.models}, revision {revision()}")
                print(table)
                return
            runs, outcomes = {}, {}
            for fusion in fusions:
                started = time.perf_counter()
                outcomes[fusion] = evaluation.run_judgements(engine, sets, fusion=fusion, ks=ks, weak=args.weak)
                runs[fusion] = evaluation.summarize(outcomes[fusion], ks)
                print(f"{fusion}: {len(outcomes[fusion])} queries in {time.perf_counter() - started:.1f}s",
                      file=sys.stderr)
        finally:
            engine.close()

    measured = datetime.datetime.now().astimezone().isoformat(timespec="minutes")
    print(f"relevance of {', '.join(str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p) for p in files)}"
          f"\nmodels {args.models}, revision {revision()}, measured {measured}"
          + (", weak hits counted" if args.weak else ""))
    print(side_by_side(runs, ks))

    if args.write_expected:
        fusion = fusions[0]
        record = {
            "about": "Lower bounds for `searchd eval sample_data/judgements/en.jsonl sample_data/judgements/"
                     "zh.jsonl` with the demo models, checked by tests/e2e/test_cli.py; per 'mode/lang', "
                     f"each measured figure rounded down to 0.05 less {args.margin}. Re-record with "
                     "`python bench/relevance.py --write-expected` after a change that is meant to move them.",
            "fusion": fusion,
            "measured": measured,
            "revision": revision(),
            "min": lower_bounds(runs[fusion], args.margin),
        }
        args.write_expected.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n")
        print(f"wrote {args.write_expected}", file=sys.stderr)


if __name__ == "__main__":
    main()
