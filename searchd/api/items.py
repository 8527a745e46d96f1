"""Item routes: details, similar items, thumbnail and original file.

Files are found through the catalog by id: no part of the request path ever
reaches the filesystem, so only indexed documents can be served.
"""

from __future__ import annotations

import mimetypes
import os
from typing import Annotated

from litestar.di import NamedDependency
from litestar import Controller, Response, get
from litestar.params import Parameter
from litestar.response import File

from indexer.datadir import DataDir
from indexer.errors import NotFoundError
from searchd.api.presenters import item_out, search_response
from searchd.api.schemas import ItemOut, SearchOut
from searchd.api.search import COLLAPSE, WEAK
from searchd.engine import MAX_K, MAX_OFFSET, Query, SearchEngine

ITEM_ID = Annotated[int, Parameter(ge=1, le=2**62, description="An item id from a search hit.")]


class ItemsController(Controller):
    path = "/api/items"
    tags = ["items"]

    @get("/{item_id:int}", sync_to_thread=True, summary="One item and its document's metadata")
    def get_item(self, engine: NamedDependency[SearchEngine], item_id: ITEM_ID) -> ItemOut:
        return item_out(engine.item(item_id))

    @get("/{item_id:int}/similar", sync_to_thread=True, summary="Search by an item already in the index")
    def similar(
        self,
        engine: NamedDependency[SearchEngine],
        item_id: ITEM_ID,
        mode: Annotated[str, Parameter(description="Any mode: image-* modes use the item's CLIP vector, "
                                                   "text-text its sentence-transformer vector (text items).")] = "image-image",
        k: Annotated[int, Parameter(ge=1, le=MAX_K)] = 20,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
        weak: WEAK = False,
        collapse: COLLAPSE = True,
    ) -> Response[SearchOut]:
        engine.item(item_id)  # 404 before anything else
        return search_response(engine.search(Query(mode=mode, item_id=item_id, k=k, offset=offset, weak=weak,
                                                    collapse=collapse)))

    @get("/{item_id:int}/thumbnail", sync_to_thread=True, summary="Small WebP preview of an image item",
         media_type="image/webp")
    def thumbnail(self, engine: NamedDependency[SearchEngine], item_id: ITEM_ID) -> File:
        rec = engine.item(item_id)
        if rec.kind != "image":
            raise NotFoundError(f"item {item_id} is not an image")
        path = DataDir(engine.data_dir.root).thumb_path(rec.content_hash)
        if not path.is_file():
            raise NotFoundError(f"no thumbnail for item {item_id}")
        return File(path=path, media_type="image/webp", content_disposition_type="inline",
                    headers={"Cache-Control": "public, max-age=86400"})

    @get("/{item_id:int}/file", sync_to_thread=True, summary="The original indexed file")
    def file(self, engine: NamedDependency[SearchEngine], item_id: ITEM_ID) -> File:
        rec = engine.item(item_id)
        if not os.path.isfile(rec.path):
            raise NotFoundError(f"the file of item {item_id} is no longer on disk")
        media_type = mimetypes.guess_type(rec.path)[0] or "application/octet-stream"
        if media_type == "text/html":
            media_type = "text/plain"  # never render an indexed page as our own origin
        return File(path=rec.path, media_type=media_type, content_disposition_type="inline",
                    filename=os.path.basename(rec.path))
