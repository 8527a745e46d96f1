"""Snippets mark whole words and phrases in every language, and show the densest part."""

from __future__ import annotations

import re

from searchd.snippets import make_snippet, query_terms


def marked(snippet: str) -> list[str]:
    return re.findall(r"<mark>(.*?)</mark>", snippet)


def test_query_terms_are_words_in_every_language():
    assert query_terms("How does a Heat-Pump work?") == ["how", "does", "heat", "pump", "work"]
    assert query_terms("注意力机制") == ["注意力", "机制"]
    assert query_terms("LoRA微调 LoRA 微调") == ["lora", "微调"]
    assert query_terms("ひら。") == ["ひ", "ら"]  # kana one character each, punctuation never


def test_english_whole_words_only_and_html_escaped():
    snippet = make_snippet("Use <b>FAISS</b> for faster search; FAISSLIKE is not it & <script>.",
                           ["faiss", "search"])
    assert "&lt;b&gt;<mark>FAISS</mark>&lt;/b&gt;" in snippet and "&amp; &lt;script&gt;" in snippet
    assert marked(snippet) == ["FAISS", "search"]  # not FAISS in FAISSLIKE, not search in researcher
    assert marked(make_snippet("researchers searched", ["search"])) == []
    assert "<script>" not in make_snippet("<script>alert(1)</script>", query_terms("script"))


def test_stop_words_are_not_marked():
    assert marked(make_snippet("the heat of the pump", query_terms("the pump"))) == ["pump"]


def test_chinese_whole_words_never_lone_characters():
    passage = "意力不集中的机器制造工厂。注意力机制是Transformer的核心，注意力分配和机制设计都重要。"
    snippet = make_snippet(passage, query_terms("注意力机制"))
    assert marked(snippet) == ["注意力机制", "注意力", "机制"]  # adjoining words marked as one phrase
    assert "<mark>" not in snippet.split("注意力机制")[0].split("<mark>")[0] + "意力不集中的机器制造"
    assert marked(make_snippet("意力不集中，机器制造，注意安全", query_terms("注意力机制"))) == []


def test_mixed_chinese_and_english():
    snippet = make_snippet("我们用LoRA方法微调大语言模型，也用 lora adapters。", query_terms("LoRA 微调"))
    assert marked(snippet) == ["LoRA", "微调", "lora"]  # English next to Chinese is a whole word


def test_the_window_centres_on_the_densest_cluster_of_matches():
    passage = ("a pump is mentioned here once. " + "filler sentence without the words. " * 12
               + "heat pump maintenance: the heat pump needs maintenance. " + "closing filler text. " * 12)
    snippet = make_snippet(passage, query_terms("heat pump maintenance"), width=120)
    assert snippet.startswith("…") and snippet.endswith("…")
    assert marked(snippet) == ["heat", "pump", "maintenance", "heat", "pump", "maintenance"]
    shown = re.sub("<.*?>", "", snippet.strip("…"))
    start = passage.index(shown)
    end = start + len(shown)
    assert not passage[start - 1].isalnum() and not passage[end].isalnum()  # no word cut in two
    zh = "其他内容。" * 60 + "向量数据库支持语义搜索，数据库很快。" + "其他内容。" * 60
    assert marked(make_snippet(zh, query_terms("数据库 语义搜索"), width=80)) == ["数据库", "语义搜索", "数据库"]


def test_short_passages_and_no_matches_are_shown_whole_or_from_the_start():
    assert make_snippet("short & sweet", []) == "short &amp; sweet"
    long = "word " * 100
    snippet = make_snippet(long, ["absent"], width=50)
    assert snippet.startswith("word") and snippet.endswith("…") and len(snippet) <= 51
