"""The catalog: SQLite through SQLAlchemy, the source of truth."""

from indexer.catalog.repository import KEYS, Catalog, DocumentWrite, ItemRecord, ItemWrite, open_catalog
from indexer.keywords import STOP_WORDS, cjk_spaced

__all__ = ["Catalog", "DocumentWrite", "ItemWrite", "ItemRecord", "KEYS", "STOP_WORDS", "cjk_spaced",
           "open_catalog"]
