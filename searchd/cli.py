"""`searchd index | search | status | verify | remove | eval | serve | ask`.

The edge: builds Settings from flags and SEARCHD_* variables, wires the
library, prints, and turns library errors into a message and an exit code.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import click

from indexer.errors import BadRequestError, NotIndexedError
from searchd.cli_common import setting_help, quiet_libraries, common_options, handle_errors, settings_from
from searchd.cli_ask import ask
from searchd.settings import Settings, describe_settings, settings_env

@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="searchd")
def cli() -> None:
    """searchd: find images and documents by meaning."""


# --- index ------------------------------------------------------------------------------

def _indexer(settings: Settings, catalog, *, reembed: bool = False, quiet_models: bool = True):
    from indexer.datadir import DataDir
    from indexer.encoders import load_encoders, preset_specs
    from indexer.pipeline import Indexer, IndexOptions

    if quiet_models:
        quiet_libraries()
    clip_spec, text_spec = preset_specs(settings.models, settings.clip_model, settings.text_model)
    clip, text = load_encoders(clip_spec, text_spec, device=settings.device, offline=settings.offline,
                               quantize=settings.quantize)
    gpu_decode = settings.gpu_decode != "off" and clip.device.startswith("cuda")
    options = IndexOptions(batch_size=settings.batch_size, workers=settings.workers, exclude=settings.exclude,
                           follow_links=settings.follow_links,
                           max_image_pixels=settings.max_image_pixels, reembed=reembed,
                           policy=settings.index_policy, decode_device=clip.device if gpu_decode else None,
                           device_share="all" if settings.gpu_decode == "all" else "busy")
    return Indexer(DataDir(settings.data_dir), catalog, clip, text, options)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@common_options
@click.option("--batch-size", type=int, help=setting_help("batch_size"))
@click.option("--workers", type=int, help=setting_help("workers"))
@click.option("--exclude", multiple=True, help=setting_help("exclude"))
@click.option("--follow-links", is_flag=True, default=None, help=setting_help("follow_links"))
@click.option("--quantize", type=click.Choice(["none", "int8"]), help=setting_help("quantize"))
@click.option("--gpu-decode", type=click.Choice(["auto", "all", "off"]), help=setting_help("gpu_decode"))
@click.option("--reembed", is_flag=True, help="Re-embed every file, e.g. after changing a model.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def index(paths, reembed, as_json, **overrides):
    """Index images and text documents under PATHS (incremental, crash-safe)."""
    from tqdm import tqdm

    from indexer.catalog import open_catalog
    from indexer.datadir import DataDir
    from indexer.lock import WriterLock

    settings = settings_from(**overrides)
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise BadRequestError(f"no such file or folder: {', '.join(missing)}")
    data = DataDir(settings.data_dir)
    with WriterLock(data.root):
        catalog = open_catalog(data.catalog_path, vector_dtype=settings.catalog_dtype)
        try:
            indexer = _indexer(settings, catalog, reembed=reembed)
            if reembed:
                dropped = indexer.forget_mismatched_spaces()
                if dropped:
                    click.echo(f"re-embedding the {', '.join(dropped)} space(s) with the configured models",
                               err=True)
            bar = None

            def progress(done: int, total: int, path: str) -> None:
                nonlocal bar
                if bar is None:
                    # disable=None: a bar on a terminal, silence in logs and pipes
                    bar = tqdm(total=total, unit="file", dynamic_ncols=True, file=sys.stderr,
                               disable=None, smoothing=0.1, desc="indexing")
                bar.update(1)

            try:
                report = indexer.run(paths, progress=progress)
            finally:
                if bar is not None:
                    bar.close()
        finally:
            catalog.close()
    if as_json:
        click.echo(json.dumps({**report.summary(), "skipped_files": [
            {"path": p, "reason": r} for p, r in report.skipped]}, ensure_ascii=False))
        return
    s = report.summary()
    click.echo(f"added {s['added']}, updated {s['updated']}, removed {s['removed']}, "
               f"unchanged {s['unchanged']}, skipped {s['skipped']}"
               + (f" ({s['reused']} reused stored vectors)" if s["reused"] else ""))
    encoded = report.images + report.passages
    if encoded and report.seconds:
        click.echo(f"encoded {report.images} images and {report.passages} passages in {report.seconds:.1f}s "
                   f"({(len(report.added) + len(report.updated)) / report.seconds:.1f} files/s); "
                   f"generation {report.generation}"
                   + (f"; {report.device_decoded} images decoded on the GPU" if report.device_decoded else ""))
    for path, reason in report.skipped:
        click.echo(f"  skipped {path}: {reason}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@common_options
@handle_errors
def remove(paths, **overrides):
    """Remove documents at or under PATHS from the index."""
    from indexer.catalog import open_catalog
    from indexer.datadir import DataDir
    from indexer.lock import WriterLock
    from indexer.pipeline import Indexer

    settings = settings_from(**overrides)
    data = DataDir(settings.data_dir)
    if not data.exists():
        raise NotIndexedError(f"nothing is indexed in {data.root}")
    with WriterLock(data.root):
        catalog = open_catalog(data.catalog_path, create=False)
        try:
            removed = Indexer(data, catalog, clip=None, text=None).remove(paths)
        finally:
            catalog.close()
    click.echo(f"removed {len(removed)} document(s)")
    for path in removed:
        click.echo(f"  {path}")


# --- search -----------------------------------------------------------------------------

def _render_snippet(snippet: str, color: bool) -> str:
    import html

    if color:
        snippet = snippet.replace("<mark>", "\x1b[1;33m").replace("</mark>", "\x1b[0m")
    else:
        snippet = snippet.replace("<mark>", "[").replace("</mark>", "]")
    return html.unescape(re.sub(r"\s+", " ", snippet))


@cli.command()
@click.argument("query", required=False, default="")
@common_options
@click.option("--mode", type=click.Choice(["text-image", "text-text", "text-all", "image-image",
                                           "image-text", "image-all"]),
              help="What to search with what (default: text-all, or image-all with --image).")
@click.option("--image", "image_path", type=click.Path(exists=True, dir_okay=False),
              help="Search by this image (image-* modes).")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Number of results.")
@click.option("--offset", type=int, default=0, help="Skip this many results (paging).")
@click.option("--kind", type=click.Choice(["image", "text"]), help="Only hits of this kind.")
@click.option("--weak", is_flag=True, help="Also show hits below the relevance floor (marked weak).")
@click.option("--no-collapse", "collapse", is_flag=True, flag_value=False, default=True,
              help="Show near-duplicate images one by one instead of folded into one hit.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: query, mode, took_ms, hits, weak_hidden, notice.")
@handle_errors
def search(query, mode, image_path, k, offset, kind, weak, collapse, as_json, **overrides):
    """Search the index by text QUERY or by --image FILE."""
    from searchd.engine import Query, create_search_engine

    quiet_libraries()
    settings = settings_from(**overrides)
    engine = create_search_engine(settings)
    try:
        image = engine.load_upload(Path(image_path).read_bytes()) if image_path else None
        mode = mode or ("image-all" if image is not None else "text-all")
        result = engine.search(Query(mode=mode, text=query if not image_path else None, image=image,
                                     k=k, offset=offset, kind=kind, weak=weak, collapse=collapse))
    finally:
        engine.close()
    if as_json:
        out = result.to_dict()
        if image_path:
            out["query"] = image_path
        out.pop("next_offset", None)
        click.echo(json.dumps(out, ensure_ascii=False))
        return
    color = sys.stdout.isatty()
    if result.notice:
        click.echo(f"note: {result.notice}", err=True)
    if not result.hits:
        click.echo("no close matches" + (f"; {result.weak_hidden} weaker ones hidden (--weak shows them)"
                                         if result.weak_hidden else ""))
    for rank, hit in enumerate(result.hits, start=offset + 1):
        flags = "".join((" (weak)" if hit.weak else "", f" (+{len(hit.copies)} copies)" if hit.copies else ""))
        click.echo(f"{rank:>3}. {hit.score:6.3f}  {hit.kind:<5}  {hit.path}{flags}")
        if hit.snippet:
            click.echo(f"       {_render_snippet(hit.snippet, color)[:200]}")
    hidden = f", {result.weak_hidden} weaker hidden" if result.weak_hidden and result.hits else ""
    click.echo(f"({len(result.hits)} hits in {result.took_ms:.0f} ms, mode {result.mode}{hidden})", err=True)


# --- status and verify ------------------------------------------------------------------

@cli.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def status(as_json, **overrides):
    """Show the data dir, models, counts and skipped files."""
    from searchd.engine import create_search_engine

    engine = create_search_engine(settings_from(**overrides))  # models stay unloaded: not needed here
    try:
        out = engine.status()
    finally:
        engine.close()
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    click.echo(f"data dir     {out['data_dir']}" + ("" if out["indexed"] else "  (nothing indexed yet)"))
    for space, identity in out["models"].items():
        if identity:
            # catalogs stamped before languages were recorded have none to show
            languages = identity.get("languages") or []
            spoken = f", languages: {', '.join(languages)}" if languages else ""
            tag = f" {identity['pretrained']}" if identity["pretrained"] else ""
            click.echo(f"model {space:<6} {identity['name']}{tag} ({identity['dim']}-d{spoken})")
    docs = out["documents"]
    click.echo(f"documents    {docs['image']} images, {docs['text']} text")
    click.echo(f"items        {out['items']}  " + ", ".join(f"{k}: {v}" for k, v in out["items_by_index"].items()))
    for name, info in out["indexes"].items():
        extra = f", nprobe {info['nprobe']}" if info["nprobe"] else ""
        click.echo(f"index {name:<10} {info['type']}, {info['vectors']} vectors, "
                   f"expected recall@10 {info['expected_recall']:.2f}{extra}")
    click.echo(f"generation   {out['generation']}")
    click.echo(f"skipped      {out['skipped']}")
    for entry in out["skipped_files"]:
        click.echo(f"  {entry['path']}: {entry['reason']}")


@cli.command()
@common_options
@click.option("--repair", is_flag=True, help="Rebuild the FAISS files from the vectors in SQLite and an outdated "
                                            "keyword index from the stored text (no model).")
@handle_errors
def verify(repair, **overrides):
    """Check that the catalog and the FAISS files agree (exit 0 only when they do)."""
    from indexer.catalog import open_catalog
    from indexer.datadir import DataDir
    from indexer.lock import WriterLock
    from indexer.vectors import IndexSet

    settings = settings_from(**overrides)
    data = DataDir(settings.data_dir)
    if not data.exists():
        raise NotIndexedError(f"nothing is indexed in {data.root}")
    catalog = open_catalog(data.catalog_path, create=False)
    try:
        problems = IndexSet.load(data.indexes_dir).disagreements(catalog)
        if repair:
            with WriterLock(data.root):
                if catalog.upgrade_keywords():  # an index made before Chinese was read by words
                    click.echo("repaired: rebuilt the keyword index from the stored passages")
                if problems:
                    rebuilt = IndexSet.rebuild(data.indexes_dir, catalog, policy=settings.index_policy)
                    rebuilt.save(catalog.data_version, catalog.generation + 1)
                    catalog.bump_generation()
                    click.echo(f"repaired: rebuilt {len(rebuilt.indexes)} index(es) from the catalog")
                    for problem in problems:
                        click.echo(f"  was: {problem}")
            if problems:
                problems = IndexSet.load(data.indexes_dir).disagreements(catalog)
        counts = catalog.counts()
    finally:
        catalog.close()
    if problems:
        for problem in problems:
            click.echo(f"MISMATCH {problem}")
        click.echo("run `searchd verify --repair` to rebuild the indexes from the catalog", err=True)
        sys.exit(1)
    click.echo(f"ok: catalog and indexes agree ({sum(counts['items'].values())} items)")


# --- eval -------------------------------------------------------------------------------

@cli.command("eval")
@click.argument("judgements", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@common_options
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help="Folder the judged paths are relative to (default: each file's root header, "
                   "else the file's own folder).")
@click.option("--fusion", type=click.Choice(["calibrated", "rrf"]), default="calibrated", show_default=True,
              help="How result lists from different spaces merge.")
@click.option("-k", "ks", default="1,5,10", show_default=True, help="Cut-offs for recall@k, comma-separated.")
@click.option("--weak", is_flag=True, help="Also count hits below the relevance floor.")
@click.option("--queries", "show_queries", is_flag=True,
              help="Also list every query with the ranks of its relevant files.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the groups and every query's figures.")
@handle_errors
def eval_cmd(judgements, root, fusion, ks, weak, show_queries, as_json, **overrides):
    """Measure relevance against JUDGEMENTS files (JSON Lines; see searchd/eval.py):
    recall@k, MRR, nDCG@10 and empty@10 per mode and language."""
    from searchd import eval as evaluation
    from searchd.engine import MAX_K, create_search_engine

    try:
        cutoffs = sorted({int(k) for k in ks.split(",") if k.strip()})
    except ValueError:
        raise BadRequestError(f"-k takes whole numbers separated by commas, not {ks!r}") from None
    if not cutoffs or not all(1 <= k < MAX_K for k in cutoffs):
        raise BadRequestError(f"-k cut-offs must be between 1 and {MAX_K - 1}")
    # a bad file fails here, before any model loads
    sets = [evaluation.load_judgements(path, root) for path in judgements]
    quiet_libraries()
    engine = create_search_engine(settings_from(**overrides))
    try:
        engine.warm_up()  # so no query's time includes loading the models
        outcomes = evaluation.run_judgements(engine, sets, fusion=fusion, ks=cutoffs, weak=weak)
    finally:
        engine.close()
    if as_json:
        click.echo(json.dumps(evaluation.report(outcomes, fusion=fusion, ks=cutoffs, sets=sets),
                              ensure_ascii=False))
        return
    if show_queries:
        click.echo(evaluation.format_queries(outcomes) + "\n")
    click.echo(evaluation.format_table(evaluation.summarize(outcomes, cutoffs), cutoffs))
    click.echo(f"({len(outcomes)} queries from {len(sets)} file(s), fusion {fusion}; n: queries with "
               f"relevant files, none: queries scored by empty@{evaluation.PAGE})", err=True)


# --- serve ------------------------------------------------------------------------------

@cli.command()
@common_options
@click.option("--host", help=setting_help("host"))
@click.option("--port", type=int, help=setting_help("port"))
@click.option("--processes", type=int, help=setting_help("processes"))
@handle_errors
def serve(**overrides):
    """Serve the search page and the JSON API."""
    import uvicorn

    from searchd.app import create_app
    from searchd.engine import create_search_engine
    from searchd.http_protocol import Utf8TargetProtocol

    quiet_libraries()
    settings = settings_from(**overrides)
    # Load models and check them against the index here, so a problem is a clear message
    # and exit code, not a traceback from inside the server's start-up.
    engine = create_search_engine(settings)
    engine.warm_up()
    click.echo(f"searchd serving {settings.data_dir} on http://{settings.host}:{settings.port}"
               + (f" with {settings.processes} processes" if settings.processes > 1 else ""), err=True)
    if settings.processes > 1:
        # uvicorn's supervisor replaces this process (and the models it loaded); each
        # worker rebuilds the settings from the environment and loads its own models.
        engine.close()
        os.execve(sys.executable, [
            sys.executable, "-m", "uvicorn", "searchd.app:app_from_env", "--factory",
            "--workers", str(settings.processes), "--host", settings.host, "--port", str(settings.port),
            "--http", "searchd.http_protocol:Utf8TargetProtocol",  # raw UTF-8 URLs, as below
            "--log-level", "warning", "--no-access-log"], {**os.environ, **settings_env(settings)})
    app = create_app(settings, engine, warm=False)
    try:
        # Utf8TargetProtocol: `curl '.../api/search?q=语言模型'` (raw UTF-8, not %-encoded) is
        # answered instead of refused with 400 by the HTTP parser
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                    http=Utf8TargetProtocol)
    finally:
        engine.close()


def _flags_by_setting() -> dict[str, str]:
    flags: dict[str, str] = {}
    for command in cli.commands.values():
        for param in command.params:
            if param.name and getattr(param, "opts", None):
                flags.setdefault(param.name, param.opts[0])
    return flags


@cli.command("settings")
@click.option("--markdown", is_flag=True, help="Print the table for the README.")
def settings_cmd(markdown):
    """List every setting with its environment variable, flag and default."""
    flags = _flags_by_setting()
    if markdown:
        click.echo("| variable | flag | default | meaning |\n| --- | --- | --- | --- |")
    for entry in describe_settings():
        flag = flags.get(entry["name"], "")
        default = "" if entry["secret"] else entry["default"]
        if markdown:
            click.echo(f"| `{entry['env']}` | {f'`{flag}`' if flag else ''} | `{default}` | {entry['help']} |")
        else:
            click.echo(f"{entry['env']:<28} {flag:<14} {str(default):<22} {entry['help']}")


cli.add_command(ask)


def main() -> None:
    cli(prog_name="searchd")
