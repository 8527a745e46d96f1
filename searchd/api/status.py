"""Status and health."""

from __future__ import annotations

from litestar.di import NamedDependency
from litestar import Controller, get

from searchd.api.schemas import HealthOut, StatusOut
from searchd.engine import SearchEngine
from searchd.settings import Settings


class StatusController(Controller):
    path = "/api/status"
    tags = ["status"]

    @get("/", sync_to_thread=True, summary="Counts, models, generation and the last index run")
    def status(self, engine: NamedDependency[SearchEngine], settings: NamedDependency[Settings]) -> StatusOut:
        s = engine.status(skipped_files=0)
        return StatusOut(
            data_dir=s["data_dir"], indexed=s["indexed"], documents=s["documents"], items=s["items"],
            items_by_index=s["items_by_index"], skipped=s["skipped"], generation=s["generation"],
            models=s["models"], indexes=s["indexes"], last_run=s["last_run"],
            llm={"model": settings.llm_model, "vision": settings.llm_vision} if settings.llm_enabled else None)


@get("/healthz", sync_to_thread=True, summary="Liveness", tags=["status"])
def healthz(engine: NamedDependency[SearchEngine]) -> HealthOut:
    return HealthOut(status="ok", generation=engine.generation)
