"""SQLAlchemy 2.0 models: the catalog is the source of truth.

A document is a file; an item is one embedded thing (an image, or one text
passage in one space) and its id is its FAISS id. Every vector is kept here so
FAISS files can be rebuilt without a model.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = 1


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_hash", "content_hash"), Index("ix_documents_taken", "taken_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(String(8))          # image | text
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    taken_at: Mapped[str | None] = mapped_column(String(32), nullable=True)  # ISO, from EXIF
    meta_json: Mapped[str] = mapped_column(Text, default="{}")
    indexed_at: Mapped[float] = mapped_column(Float)

    items: Mapped[list["Item"]] = relationship(back_populates="document", cascade="all, delete-orphan",
                                               passive_deletes=True)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (Index("ix_items_doc", "document_id"), Index("ix_items_space", "space", "modality"))

    # AUTOINCREMENT: ids are never reused, so a stale FAISS id can never point at a new item
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    space: Mapped[str] = mapped_column(String(8))      # clip | text
    modality: Mapped[str] = mapped_column(String(8))   # image | text
    ordinal: Mapped[int] = mapped_column(Integer, default=0)  # passage number in its document
    text: Mapped[str | None] = mapped_column(Text, nullable=True)

    document: Mapped[Document] = relationship(back_populates="items")
    vector: Mapped["Vector"] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class Vector(Base):
    __tablename__ = "vectors"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    dtype: Mapped[str] = mapped_column(String(4))     # f4 | f2
    dim: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Skipped(Base):
    __tablename__ = "skipped"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    reason: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=-1)
    mtime_ns: Mapped[int] = mapped_column(BigInteger, default=-1)
    at: Mapped[float] = mapped_column(Float)


class Meta(Base):
    __tablename__ = "meta"
    __table_args__ = (UniqueConstraint("key"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


#: BM25 over text passages (text-space items), rowid = item id. Rows come from
#: indexer.keywords.fts_body: ``body`` holds the text with Chinese words set apart by
#: spaces, ``subwords`` the dictionary words inside long Chinese words (weighted lower).
#: ``meta.fts_tokenizer`` records the form, so a catalog of an older form is rebuilt.
FTS_DDL = ("CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5("
           "body, subwords, tokenize = 'unicode61 remove_diacritics 2')")

#: the ORDER BY of a BM25 query: a sub-word match counts half a word match. With no
#: Chinese the subwords column is empty and scores equal the single-column table's.
FTS_RANK = "bm25(passages_fts, 1.0, 0.5)"
