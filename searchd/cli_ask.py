"""`searchd ask QUESTION`: search, then a streamed LLM answer citing the hits as [n].

Registered on the `searchd` group in cli.py (``cli.add_command(ask)``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import click

from indexer.errors import BadRequestError
from searchd.answer import MAX_ANSWER_K, Answerer, LLMNotConfiguredError, Source
from searchd.cli_common import setting_help, quiet_libraries, common_options, handle_errors, settings_from
from searchd.engine import TEXT_MODES

#: exit status when the search worked but the LLM did not answer
EXIT_ANSWER_FAILED = 1


def _print_sources(sources: list[Source]) -> None:
    """Every source the LLM was given, under the number the answer cites it by."""
    if not sources:
        return
    click.echo("")
    click.echo("sources:")
    for source in sources:
        line = f"[{source.n}] {source.hit.path}"
        record = source.hit.record
        if source.hit.kind == "text" and record is not None and ((record.metadata or {}).get("passages") or 1) > 1:
            line += f" (passage {record.ordinal + 1})"
        click.echo(line)


@click.command()
@click.argument("question")
@common_options
@click.option("--mode", type=click.Choice(TEXT_MODES), default="text-all", show_default=True,
              help="What to search for sources.")
@click.option("-k", "k", type=int, default=8, show_default=True, help="Search hits to consider as sources (1-50).")
@click.option("--llm-base-url", help=setting_help("llm_base_url"))
@click.option("--llm-model", help=setting_help("llm_model"))
@click.option("--llm-timeout", type=float, help=setting_help("llm_timeout"))
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: answer, answer_error, citations, hits, model, took_ms.")
@handle_errors
def ask(question, mode, k, as_json, **overrides):
    """Answer QUESTION with the configured LLM, citing what the search finds as [n]."""
    from searchd.engine import Query, create_search_engine

    started = time.perf_counter()
    settings = settings_from(**overrides)
    if not settings.llm_enabled:
        raise LLMNotConfiguredError("LLM answers are off; set SEARCHD_LLM_BASE_URL (or --llm-base-url) to an "
                                    "OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1")
    if not 1 <= k <= MAX_ANSWER_K:
        raise BadRequestError(f"-k must be between 1 and {MAX_ANSWER_K}")
    quiet_libraries()
    engine = create_search_engine(settings)
    try:
        result = engine.search(Query(mode=mode, text=question, k=k))
    finally:
        engine.close()
    hits = result.hits

    if as_json:
        async def whole():
            async with Answerer(settings) as answerer:
                return await answerer.answer(question, hits)

        outcome = asyncio.run(whole())
        click.echo(json.dumps({"query": question, "mode": mode, "answer": outcome.answer,
                               "answer_error": outcome.error, "citations": outcome.citations,
                               "hits": [h.to_dict() for h in hits], "model": outcome.model,
                               "took_ms": round((time.perf_counter() - started) * 1000, 2)}, ensure_ascii=False))
        if outcome.error:
            sys.exit(EXIT_ANSWER_FAILED)
        return

    async def streamed() -> tuple[list[Source], str | None]:
        async with Answerer(settings) as answerer:
            prompt = answerer.prepare(question, hits)
            error, wrote = None, False
            async for kind, payload in answerer.stream(question, hits, prompt=prompt):
                if kind == "token":
                    click.echo(payload, nl=False)
                    wrote = True
                elif kind == "error":
                    error = payload
            if wrote:
                click.echo("")
            return prompt.sources, error

    sources, error = asyncio.run(streamed())
    if error:
        click.secho(f"error: {error}", fg="red", err=True)
    _print_sources(sources)
    if error:
        sys.exit(EXIT_ANSWER_FAILED)
