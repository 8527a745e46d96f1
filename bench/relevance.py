"""Relevance over the sample judgements: calibrated fusion against reciprocal rank fusion.

    python bench/relevance.py                          # index sample_data/ into a temp dir (demo models)
    python bench/relevance.py --data-dir D             # reuse an index of sample_data/
    python bench/relevance.py --write-expected         # also record lower bounds for the e2e test

Runs every judgements file (default: sample_data/judgements/*.jsonl) through the engine once
per fusion method and prints, per mode and language, recall@1/5/10, MRR, nDCG@10 and empty@10
side by side (n: queries with relevant files; none: queries scored by empty@10). The same
figures come from `searchd eval FILES --fusion METHOD`.

--write-expected records sample_data/judgements/expected.json from the first --fusion's run:
per (mode, language) the nDCG@10, recall@10 and empty@10 measured, rounded down to a multiple
of 0.05 and lowered by --margin, so tests/e2e/test_cli.py fails when relevance drops, not when
it wobbles. Zero bounds are left out.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from searchd import eval as evaluation  # noqa: E402
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
    args = ap.parse_args()

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
