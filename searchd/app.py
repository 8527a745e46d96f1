"""create_app(settings, engine=None): the one place the service is wired.

The lifespan owns the SearchEngine (models load once, at start-up) unless one
is handed in; domain errors become one JSON shape ``{"error", "status"}``.
"""

from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import anyio
from litestar import Litestar, MediaType, Request, Response, get
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.logging.config import LoggingConfig
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.response import Template
from litestar.datastructures import State
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from indexer import __version__
from indexer.errors import SearchdError
from searchd.api.answer import AnswerController
from searchd.api.items import ItemsController
from searchd.api.search import SearchController
from searchd.api.status import StatusController, healthz
from searchd.engine import SearchEngine, create_search_engine
from searchd.settings import Settings

log = logging.getLogger("searchd")
WEB = Path(__file__).resolve().parents[1] / "web"


def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    return Response({"error": message, "status": status}, status_code=status, media_type=MediaType.JSON,
                    headers=headers)


def handle_searchd_error(_: Request, exc: SearchdError) -> Response:
    return error_response(exc.status, str(exc))


def handle_http_error(_: Request, exc: HTTPException) -> Response:
    message = exc.detail
    extra = getattr(exc, "extra", None)
    if exc.status_code == 400 and extra:
        parts = []
        for problem in extra if isinstance(extra, list) else [extra]:
            if isinstance(problem, dict):
                key = problem.get("key") or ""
                parts.append(f"{key}: {problem.get('message', '')}".strip(": "))
        if parts:
            message = "invalid request: " + "; ".join(parts)
    if exc.status_code == 413:
        message = "the upload is too large"
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


def handle_unexpected(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, f"internal error: {type(exc).__name__}")


def api_key_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    key = connection.app.state.settings.api_key
    if not key:
        return
    header = connection.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else connection.headers.get("x-api-key", "")
    given = given or connection.query_params.get("api_key", "")
    if not given or not hmac.compare_digest(given.encode(), key.encode()):
        raise NotAuthorizedException("an API key is required: send `Authorization: Bearer KEY` or `X-API-Key: KEY`")


@get("/", include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False)
def page(settings: NamedDependency[Settings]) -> Template:
    return Template(template_name="index.html",
                    context={"version": __version__, "llm_enabled": settings.llm_enabled,
                             "api_key_required": bool(settings.api_key),
                             "max_upload_mb": settings.max_upload_mb})


def create_app(settings: Settings, engine: SearchEngine | None = None, *, warm: bool = True) -> Litestar:
    owns_engine = engine is None
    engine = engine or create_search_engine(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.engine = engine
        app.state.settings = settings
        if warm:
            await anyio.to_thread.run_sync(engine.warm_up)
        try:
            yield
        finally:
            if owns_engine:
                engine.close()

    def provide_engine(state: State) -> SearchEngine:
        return state.engine

    def provide_settings(state: State) -> Settings:
        return state.settings

    api = Router(path="/", route_handlers=[SearchController, ItemsController, StatusController, AnswerController],
                 guards=[api_key_guard])
    handlers = [api, healthz, page]
    if (WEB / "static").is_dir():
        handlers.append(create_static_files_router(path="/static", directories=[WEB / "static"],
                                                   include_in_schema=False))
    return Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        dependencies={"engine": Provide(provide_engine, sync_to_thread=False),
                      "settings": Provide(provide_settings, sync_to_thread=False)},
        exception_handlers={SearchdError: handle_searchd_error, HTTPException: handle_http_error,
                            Exception: handle_unexpected},
        openapi_config=OpenAPIConfig(
            title="searchd", version=__version__, path="/schema",
            description="Multimodal semantic search over your own files. Errors are "
                        "`{\"error\": str, \"status\": int}`.",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")]),
        template_config=TemplateConfig(directory=WEB / "templates", engine=JinjaTemplateEngine),
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None,
        request_max_body_size=settings.max_upload_bytes + 65536,
        # Model libraries log chatter at INFO on the root logger; keep the service's log to
        # warnings and errors (unexpected errors are still logged with their traceback).
        logging_config=LoggingConfig(root={"handlers": ["queue_listener"], "level": "WARNING"},
                                     log_exceptions="always"),
        debug=False,
    )


def app_from_env() -> Litestar:
    """The app of one `searchd serve --processes N` worker, configured by ``SEARCHD_*``
    variables; it loads the models and maps the indexes before it accepts requests."""
    from searchd.cli_common import quiet_libraries
    from searchd.settings import load_settings

    quiet_libraries()
    return create_app(load_settings())
