"""The catalog: SQLite through SQLAlchemy, the source of truth."""

from indexer.catalog.repository import (KEYS, STOP_WORDS, Catalog, DocumentWrite, ItemRecord, ItemWrite,
                                        cjk_spaced, open_catalog)

__all__ = ["Catalog", "DocumentWrite", "ItemWrite", "ItemRecord", "KEYS", "STOP_WORDS", "cjk_spaced",
           "open_catalog"]
