"""Fixtures of the library's tests."""

from __future__ import annotations

import pytest

from indexer.catalog import open_catalog


@pytest.fixture
def catalog(tmp_path):
    """A new, empty catalog in a temp dir, closed after the test."""
    cat = open_catalog(tmp_path / "catalog.sqlite3")
    yield cat
    cat.close()
