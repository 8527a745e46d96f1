"""Search routes: by text, by uploaded image, by an indexed item."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import anyio
from litestar.di import NamedDependency
from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter

from indexer.errors import BadRequestError, UploadTooLargeError
from searchd.api.presenters import search_response
from searchd.api.schemas import SearchOut
from searchd.engine import IMAGE_MODES, MAX_K, MAX_OFFSET, MAX_QUERY_CHARS, MODES, Query, SearchEngine
from searchd.settings import Settings, parse_bool

K = Annotated[int, Parameter(ge=1, le=MAX_K, description="Number of hits (1-200).")]
OFFSET = Annotated[int, Parameter(ge=0, le=MAX_OFFSET, description="Hits to skip, for paging.")]
WEAK = Annotated[bool, Parameter(description="Also return hits below the relevance floor, marked weak.")]
COLLAPSE = Annotated[bool, Parameter(description="Fold near-duplicate images into one hit with its copies.")]


def _iso(value: str | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value) if "T" in value else datetime.combine(date.fromisoformat(value),
                                                                                       datetime.min.time())
    except ValueError:
        raise BadRequestError(f"{name} must be an ISO date like 2024-05-31 or 2024-05-31T12:00:00") from None
    return parsed.isoformat()


def _end_of_day(value: str | None) -> str | None:
    if value and len(value) == 10:
        return value + "T23:59:59"
    return value


class SearchController(Controller):
    path = "/api/search"
    tags = ["search"]

    @get("/", sync_to_thread=True, summary="Search by text",
         description="Text queries in every mode; `image-*` modes need `item` (an indexed item id).")
    def search(
        self,
        engine: NamedDependency[SearchEngine],
        q: Annotated[str, Parameter(max_length=MAX_QUERY_CHARS, description="The query text.")] = "",
        mode: Annotated[str, Parameter(description=f"One of {', '.join(MODES)}.")] = "text-all",
        k: K = 20,
        offset: OFFSET = 0,
        min_score: Annotated[float | None, Parameter(ge=0, le=1, description="Drop hits whose calibrated score (0-1) is below this.")] = None,
        kind: Annotated[str | None, Parameter(description="image or text")] = None,
        path_prefix: Annotated[str | None, Parameter(max_length=4096, description="Only documents under this path.")] = None,
        taken_after: Annotated[str | None, Parameter(description="Only photos taken on or after this ISO date (EXIF).")] = None,
        taken_before: Annotated[str | None, Parameter(description="Only photos taken on or before this ISO date (EXIF).")] = None,
        sort: Annotated[str, Parameter(description="relevance or date")] = "relevance",
        item: Annotated[int | None, Parameter(ge=1, description="Search by this indexed item (image-* modes).")] = None,
        weak: WEAK = False,
        collapse: COLLAPSE = True,
    ) -> Response[SearchOut]:
        query = Query(mode=mode, text=q if mode not in IMAGE_MODES else None, item_id=item, k=k, offset=offset,
                      min_score=min_score, kind=kind, path_prefix=path_prefix,
                      taken_after=_iso(taken_after, "taken_after"),
                      taken_before=_end_of_day(_iso(taken_before, "taken_before")), sort=sort,
                      weak=weak, collapse=collapse)
        return search_response(engine.search(query))

    @post("/image", summary="Search by an uploaded image", status_code=200,
          description="multipart/form-data with the image in field `file`; `mode`, `k`, `offset`, "
                      "`weak` and `collapse` as query parameters or form fields.")
    async def search_image(
        self,
        request: Request,
        engine: NamedDependency[SearchEngine],
        settings: NamedDependency[Settings],
        mode: Annotated[str | None, Parameter(description="image-image, image-text or image-all")] = None,
        k: Annotated[int | None, Parameter(ge=1, le=MAX_K)] = None,
        offset: Annotated[int | None, Parameter(ge=0, le=MAX_OFFSET)] = None,
        weak: Annotated[bool | None, Parameter(description="Also return hits below the relevance floor.")] = None,
        collapse: Annotated[bool | None, Parameter(description="Fold near-duplicate images (default true).")] = None,
    ) -> Response[SearchOut]:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_upload_bytes + 65536:
            raise UploadTooLargeError(f"upload larger than {settings.max_upload_mb:g} MB")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise BadRequestError("send the image as multipart/form-data in field `file`")
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise BadRequestError("multipart field `file` with the image is missing")
        data = await upload.read()
        if len(data) > settings.max_upload_bytes:
            raise UploadTooLargeError(f"upload larger than {settings.max_upload_mb:g} MB")
        mode = mode or form.get("mode") or "image-image"
        k = k if k is not None else _int_field(form.get("k"), 20, "k", 1, MAX_K)
        offset = offset if offset is not None else _int_field(form.get("offset"), 0, "offset", 0, MAX_OFFSET)
        weak = weak if weak is not None else _bool_field(form.get("weak"), False, "weak")
        collapse = collapse if collapse is not None else _bool_field(form.get("collapse"), True, "collapse")
        if mode not in IMAGE_MODES:
            raise BadRequestError(f"mode must be one of {', '.join(IMAGE_MODES)}")

        def run() -> Response[SearchOut]:
            image = engine.load_upload(data)
            return search_response(engine.search(Query(mode=mode, image=image, k=k, offset=offset, weak=weak,
                                                       collapse=collapse)))

        return await anyio.to_thread.run_sync(run)


def _bool_field(raw, default: bool, name: str) -> bool:
    if raw is None or raw == "":
        return default
    try:
        return parse_bool(str(raw))
    except ValueError:
        raise BadRequestError(f"{name} must be true or false") from None


def _int_field(raw, default: int, name: str, lo: int, hi: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequestError(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise BadRequestError(f"{name} must be between {lo} and {hi}")
    return value
