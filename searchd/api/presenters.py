"""Turn engine results into API shapes: the one place URLs and metadata are built."""

from __future__ import annotations

import time

from litestar import Response

from indexer.catalog import ItemRecord
from searchd.api.schemas import CopyOut, HitOut, ItemOut, SearchOut
from searchd.engine import Hit, SearchResult


def item_metadata(rec: ItemRecord) -> dict:
    meta = rec.metadata or {}
    out: dict = {"size": rec.size,
                 "modified": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(rec.mtime_ns / 1e9))}
    for key in ("width", "height", "format", "taken_at", "gps", "title", "frames"):
        if meta.get(key) is not None:
            out[key] = meta[key]
    make, model = meta.get("make") or "", meta.get("model") or ""
    camera = model if make and model.lower().startswith(make.split()[0].lower()) else f"{make} {model}".strip()
    if camera:
        out["camera"] = camera
    if rec.kind == "text":
        out["passage"] = rec.ordinal + 1
        if meta.get("passages"):
            out["passages"] = meta["passages"]
    return out


def thumbnail_url(item_id: int, kind: str) -> str | None:
    return f"/api/items/{item_id}/thumbnail" if kind == "image" else None


def hit_out(hit: Hit) -> HitOut:
    return HitOut(id=hit.id, kind=hit.kind, path=hit.path, score=round(float(hit.score), 6),
                  snippet=hit.snippet, thumbnail_url=thumbnail_url(hit.id, hit.kind),
                  file_url=f"/api/items/{hit.id}/file",
                  metadata=item_metadata(hit.record) if hit.record else {},
                  cosine=round(float(hit.cosine), 6), weak=hit.weak,
                  copies=[CopyOut(id=i, path=p) for i, p in hit.copies])


def search_out(result: SearchResult) -> SearchOut:
    return SearchOut(query=result.query, mode=result.mode, took_ms=round(result.took_ms, 2),
                     hits=[hit_out(h) for h in result.hits], next_offset=result.next_offset,
                     weak_hidden=result.weak_hidden, notice=result.notice)


def item_out(rec: ItemRecord) -> ItemOut:
    return ItemOut(id=rec.id, kind=rec.kind, path=rec.path, title=rec.title, text=rec.text,
                   thumbnail_url=thumbnail_url(rec.id, rec.kind), file_url=f"/api/items/{rec.id}/file",
                   similar_url=f"/api/items/{rec.id}/similar", metadata=item_metadata(rec))


def search_response(result: SearchResult) -> Response[SearchOut]:
    """The hits, with where the time went in a Server-Timing header (encode, search, fetch)."""
    timing = ", ".join(f"{name.removesuffix('_ms')};dur={ms:.2f}" for name, ms in result.timings.items())
    return Response(search_out(result), headers={"Server-Timing": f"{timing}, total;dur={result.took_ms:.2f}"})
