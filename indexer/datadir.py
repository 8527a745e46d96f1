"""Where things live inside a data dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.sqlite3"

    @property
    def indexes_dir(self) -> Path:
        return self.root / "indexes"

    @property
    def thumbs_dir(self) -> Path:
        return self.root / "thumbs"

    def thumb_path(self, content_hash: str) -> Path:
        return self.thumbs_dir / content_hash[:2] / f"{content_hash}.webp"

    def exists(self) -> bool:
        return self.catalog_path.exists()
