"""Typed response shapes of the JSON API (they also make the OpenAPI document)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ErrorOut:
    error: str
    status: int


@dataclass
class CopyOut:
    """A near-duplicate folded into a hit: the same picture in another file."""

    id: int
    path: str


@dataclass
class HitOut:
    id: int
    kind: str
    path: str
    score: float
    snippet: str
    thumbnail_url: str | None
    file_url: str
    metadata: dict[str, Any] = field(default_factory=dict)
    cosine: float = 0.0
    weak: bool = False
    copies: list[CopyOut] = field(default_factory=list)


@dataclass
class SearchOut:
    query: str
    mode: str
    took_ms: float
    hits: list[HitOut]
    next_offset: int | None
    weak_hidden: int = 0
    notice: str | None = None


@dataclass
class ItemOut:
    id: int
    kind: str
    path: str
    title: str | None
    text: str | None
    thumbnail_url: str | None
    file_url: str
    similar_url: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class StatusOut:
    data_dir: str
    indexed: bool
    documents: dict[str, int]
    items: int
    items_by_index: dict[str, int]
    skipped: int
    generation: int
    models: dict[str, Any]
    indexes: dict[str, Any]
    last_run: dict[str, Any] | None
    llm: dict[str, Any] | None = None


@dataclass
class HealthOut:
    status: str
    generation: int
