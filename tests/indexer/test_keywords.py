"""Keyword search in every language: Chinese by words, English exactly as before, and
catalogs of the old one-character form upgraded in place without a model."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from sqlalchemy import text

from indexer import keywords
from indexer.catalog import DocumentWrite, ItemWrite, open_catalog
from indexer.encoders import normalize
from tests.conftest import REPO

ENGLISH = ["How does the heat pump move warmth?", "IndexIVFPQ vs. IndexFlatIP: recall@10 & speed",
           "Café déjà vu — naïve résumé", "foo_bar baz-qux 2024 O'Brien"]


def test_chinese_is_cut_into_words_and_english_split_as_before():
    assert keywords.words("LoRA 微调") == ["lora", "微调"]
    assert keywords.words("用LoRA微调大语言模型") == ["用", "lora", "微调", "大", "语言", "模型"]
    assert keywords.words("注意力机制。向量数据库") == ["注意力", "机制", "向量", "数据库"]
    for sentence in ENGLISH:
        assert keywords.words(sentence) == re.findall(r"\w+", sentence.lower())
    assert keywords.words("ひらがな") == ["ひ", "ら", "が", "な"]  # kana as before: one character each


def test_the_segmenter_loads_on_first_use_not_at_import():
    code = ("import sys, indexer.keywords, indexer.catalog; assert 'rjieba' not in sys.modules; "
            "indexer.keywords.words('LoRA 微调'); assert 'rjieba' in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


def test_fts_body_sets_chinese_words_apart_and_leaves_english_untouched():
    for sentence in ENGLISH:
        assert keywords.fts_body(sentence) == (sentence, "")
    body, subwords = keywords.fts_body("向量数据库，支持IndexIVFPQ检索")
    assert body.split() == ["向量", "数据库", "，", "支持", "IndexIVFPQ", "检索"]
    assert subwords.split() == ["数据", "据库"]  # found by 数据, below an exact 数据


def test_fts_match_searches_words_and_chinese_phrases():
    english = "how does the heat pump work"
    assert keywords.fts_match(english) == " OR ".join(f'"{w}"' for w in english.split())
    assert keywords.fts_match(english, {"the"}) == '"how" OR "does" OR "heat" OR "pump" OR "work"'
    assert keywords.fts_match("the", {"the"}) == '"the"'  # nothing else left: kept
    assert keywords.fts_match("LoRA 微调") == '"lora" OR "微调"'
    assert keywords.fts_match("注意力机制") == '"注意力" OR "机制" OR "注意力 机制"'
    # a common word splits the phrase rather than slowing it down
    assert keywords.fts_match("大语言模型的微调", {"的"}) == '"大" OR "语言" OR "模型" OR "微调" OR "大 语言 模型"'
    assert keywords.fts_match('"" * ，。') == ""
    assert keywords.fts_match("语言模型", legacy=True) == '"语" OR "言" OR "模" OR "型"'


def passage_doc(path: str, body: str, seed: int = 0) -> DocumentWrite:
    rng = np.random.default_rng(seed)
    return DocumentWrite(path=path, kind="text", size=len(body), mtime_ns=1, content_hash=f"h-{path}",
                         metadata={}, items=[ItemWrite("text", "text", 0, body, normalize(rng.normal(size=8))[0])])


CHINESE = {
    "/model.md": "我们训练了一个新的模型，效果很好。",
    # shares 模 and 型 many times, never the word 模型
    "/chars.md": "模具 型号 模板 型材 模范 典型 模糊 型",
    "/lm.md": "大语言模型的微调通常使用LoRA等参数高效方法。",
    "/apart.md": "编程语言有很多种，数学上的统计模型也有很多种，两者无关。",
    "/db.md": "向量数据库用于语义搜索。",
    "/lora.md": "LoRA adapters are small.",
}
ENGLISH_DOCS = {
    "/a.md": "how a heat pump moves warmth from outside to inside",
    "/b.md": "heat pump maintenance in the winter: heat, pump, heat again",
    "/c.md": "the pump of a well and the heat of the sun",
    "/d.md": "FAISS IndexIVFPQ trades recall for speed and memory",
}


def write(catalog, docs: dict[str, str]) -> None:
    catalog.write_batch([passage_doc(path, body, seed=i) for i, (path, body) in enumerate(docs.items())])


def found(catalog, query: str) -> list[str]:
    hits = catalog.bm25(query, 10)
    records = catalog.items([i for i, _ in hits])
    return [records[i].path for i, _ in hits]


def make_legacy(catalog) -> None:
    """Turn a catalog into one written before words: one FTS column of the old
    one-token-per-CJK-character rows, and no stamp."""
    with catalog.engine.begin() as conn:
        rows = conn.execute(text("SELECT id, text FROM items WHERE space = 'text'")).all()
        conn.execute(text("DROP TABLE passages_fts"))
        conn.execute(text("CREATE VIRTUAL TABLE passages_fts USING fts5(body, "
                          "tokenize = 'unicode61 remove_diacritics 2')"))
        for item_id, body in rows:
            conn.execute(text("INSERT INTO passages_fts(rowid, body) VALUES (:i, :b)"),
                         {"i": item_id, "b": keywords.cjk_spaced(body or "")})
        conn.execute(text("DELETE FROM meta WHERE key = 'fts_tokenizer'"))


def test_bm25_finds_chinese_by_words_not_shared_characters(catalog):
    write(catalog, CHINESE)
    assert found(catalog, "模型")[0] in ("/model.md", "/lm.md")
    assert "/chars.md" not in found(catalog, "模型")
    assert found(catalog, "数据库") == ["/db.md"]
    assert found(catalog, "数据") == ["/db.md"]  # a word inside a longer one still finds it
    # side by side beats merely both present
    ranked = found(catalog, "语言模型")
    assert ranked.index("/lm.md") < ranked.index("/apart.md")


def test_bm25_mixed_chinese_and_english(catalog):
    write(catalog, CHINESE)
    ranked = found(catalog, "LoRA 微调")
    assert ranked[0] == "/lm.md" and "/lora.md" in ranked
    assert found(catalog, "LoRA微调")[0] == "/lm.md"


def test_an_old_catalog_is_rebuilt_by_its_writer_and_queried_in_its_form_until_then(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    cat = open_catalog(path)
    write(cat, CHINESE)
    make_legacy(cat)
    assert found(cat, "模型")[0] == "/chars.md"  # the old form: characters outrank the word
    cat.close()

    reader = open_catalog(path, create=False)  # a server: never writes
    assert reader.fts_tokenizer == keywords.LEGACY_TOKENIZER
    assert "/model.md" in found(reader, "模型")  # still answered, in the old form

    writer = open_catalog(path)  # `searchd index` opens it so, under the writer lock
    assert writer.fts_tokenizer == keywords.TOKENIZER
    assert "/chars.md" not in found(writer, "模型") and found(writer, "数据库") == ["/db.md"]
    assert "/chars.md" not in found(reader, "模型")  # the running reader sees the new form at once
    assert not writer.upgrade_keywords()  # once
    writer.close()
    reader.close()


def test_english_ranks_the_same_after_the_rebuild(tmp_path):
    queries = ["heat pump", "how does the heat pump work", "pump", "IndexIVFPQ recall", "the"]
    cat = open_catalog(tmp_path / "catalog.sqlite3")
    write(cat, ENGLISH_DOCS)
    cat.common_term_passages = 1  # let the stop-word rule take part
    make_legacy(cat)
    before = {q: cat.bm25(q, 10) for q in queries}
    assert cat.upgrade_keywords()
    after = {q: cat.bm25(q, 10) for q in queries}
    for q in queries:
        assert [i for i, _ in after[q]] == [i for i, _ in before[q]], q
        np.testing.assert_allclose([s for _, s in after[q]], [s for _, s in before[q]], rtol=1e-9)
    cat.close()


def test_the_rebuild_is_one_transaction(tmp_path, monkeypatch):
    cat = open_catalog(tmp_path / "catalog.sqlite3")
    write(cat, CHINESE)
    make_legacy(cat)
    cat.fts_rebuild_chunk = 2
    calls = 0

    def failing(text_: str):
        nonlocal calls
        calls += 1
        if calls > 3:
            raise RuntimeError("power cut")
        return original(text_)

    original = keywords.fts_body
    monkeypatch.setattr(keywords, "fts_body", failing)
    with pytest.raises(RuntimeError):
        cat.upgrade_keywords()
    monkeypatch.setattr(keywords, "fts_body", original)
    assert cat.fts_tokenizer == keywords.LEGACY_TOKENIZER
    assert found(cat, "模型")[0] == "/chars.md"  # the old table, whole
    with cat.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM passages_fts")).scalar() == len(CHINESE)
    cat.close()


def test_a_writer_that_opened_an_old_catalog_as_a_reader_upgrades_before_writing(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    cat = open_catalog(path)
    write(cat, CHINESE)
    make_legacy(cat)
    cat.close()
    cat = open_catalog(path, create=False)  # as `searchd remove` does
    cat.write_batch([passage_doc("/new.md", "新的模型上线了", seed=9)])
    assert cat.fts_tokenizer == keywords.TOKENIZER
    assert "/chars.md" not in found(cat, "模型") and "/new.md" in found(cat, "模型")
    cat.close()
