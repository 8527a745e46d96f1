"""The catalog: SQLite through SQLAlchemy, the source of truth."""

from indexer.catalog.repository import (Catalog, DocumentWrite, ItemWrite, ItemRecord, KEYS,
                                        cjk_spaced, open_catalog)

__all__ = ["Catalog", "DocumentWrite", "ItemWrite", "ItemRecord", "KEYS", "cjk_spaced", "open_catalog"]
