"""searchd's edges: settings, the search engine facade, CLI and HTTP service."""

from indexer import __version__

__all__ = ["__version__"]
