"""Words for keyword search (BM25) and highlights, the same at index and query time.

SQLite's FTS5 tokenizer (unicode61) splits text at spaces and punctuation: right for
English, wrong for Chinese, which has no spaces. Chinese text is cut into dictionary
words here before FTS5 sees it, and the query is cut by the same code, so "注意力机制"
finds and marks 注意力 + 机制 rather than every 注, 意, 力, 机 and 制 in unrelated words.

Everything that is not Chinese is left exactly as it was, so English ranking does not move:
FTS5 still tokenizes it, and a query's English words are found as before.

The segmenter is jieba's dictionary through rjieba (a Rust port): measured on these
(busy, 2-core) machines it loads in 0.13-0.26 s and 33 MB and cuts 3.5-8 M characters/s,
against 1.6 s, 71-77 MB and 0.23-0.36 M characters/s for pure-Python jieba 0.42.1 (which
also writes a cache file to the temp dir), with the same words out. It is loaded on
first use, so English-only collections never load it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Collection, Iterator

#: what ``meta.fts_tokenizer`` says about the rows of ``passages_fts``; a catalog whose
#: table was filled another way gets it rebuilt from the items' text by the writer
TOKENIZER = "unicode61+rjieba-dict-1"

#: catalogs from before the stamp: one FTS5 token per CJK character (see cjk_spaced)
LEGACY_TOKENIZER = "unicode61+cjk-characters"

# Han ideographs (basic, extension A, compatibility, extensions B and later): cut into words.
HAN_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
# The rest of what catalogs always split into single characters (kana, hangul, CJK
# symbols): no dictionary here knows their words, so they keep that behaviour.
SINGLE_CHARS = "\u2e80-\u33ff\u4dc0-\u4dff\uac00-\ud7af"
_PIECE = re.compile(f"([{HAN_CHARS}]+)|([{SINGLE_CHARS}])")
_HAN_WORD = re.compile(f"[{HAN_CHARS}]+")
_OLD_CJK = re.compile(r"([\u2e80-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af])")

#: words that say little; Catalog.bm25 leaves them out once they are common, and
#: highlights never mark them
STOP_WORDS = frozenset("""a an the of to in into on onto and or but not no is are was were be been being for from
with without by at as it its this that these those what which who whom whose how when where why
than then so do does did can could should would will just about over under up down out off""".split()) | frozenset(
    # Chinese function words, as the segmenter cuts them
    "的 地 得 了 着 过 是 在 和 与 及 或 也 都 就 而 之 其 于 为 把 被 这 那 这个 那个 一个 什么 怎么 如何 吗 呢 吧 啊".split())

#: a run of Chinese in a query of more words than this is not also searched as a phrase
MAX_PHRASE_WORDS = 12


@functools.cache
def _segmenter():
    """rjieba builds its dictionary when imported: once per process, on first use."""
    import rjieba

    return rjieba


def is_han(word: str) -> bool:
    """True for a word made only of Chinese characters (what the segmenter cuts)."""
    return bool(_HAN_WORD.fullmatch(word))


def segment(run: str) -> list[str]:
    """Dictionary words of a run of Chinese characters, in order; they join back to ``run``.

    HMM discovery of unknown words is off: it glues characters differently depending on
    what surrounds them, so a name could be one word in the query and another in the
    passage. Unknown words fall back to single characters, which the phrase of the query
    (fts_match) still finds side by side."""
    return _segmenter().cut(run, hmm=False)


def _subwords(run: str) -> list[tuple[str, int, int]]:
    """(word, start, end) of the words of ``run`` and the shorter dictionary words inside
    the long ones (数据库 -> 数据, 据库), as jieba's search mode gives them."""
    return _segmenter().tokenize(run, mode="search", hmm=False)


def _split_subwords(run: str) -> tuple[list[str], list[str]]:
    """(the words of ``run``, the sub-words inside them) from one search-mode pass: the
    words tile the run and every sub-word lies inside one, so a token that starts where
    the last word ended is the next word (the longest token there comes first)."""
    words_, subs, covered = [], [], 0
    for word, start, end in sorted(_subwords(run), key=lambda t: (t[1], -t[2])):
        if start >= covered:
            words_.append(word)
            covered = end
        else:
            subs.append(word)
    return words_, subs


def _plain(text: str) -> list[str]:
    # exactly how queries were split before: English keeps its terms and its ranking
    return re.findall(r"\w+", text.lower())


@dataclass(frozen=True)
class _Piece:
    words: list[str]
    han: bool   # cut by the segmenter (a phrase may be searched for it)


def _pieces(text: str) -> Iterator[_Piece]:
    pos = 0
    for m in _PIECE.finditer(text):
        if m.start() > pos:
            yield _Piece(_plain(text[pos:m.start()]), False)
        if m.group(1):
            yield _Piece(segment(m.group(1)), True)
        elif m.group(2).isalnum():  # not CJK punctuation, which FTS5 skips
            yield _Piece([m.group(2)], False)
        pos = m.end()
    if pos < len(text):
        yield _Piece(_plain(text[pos:]), False)


def words(text: str) -> list[str]:
    """The words of a text as keyword search sees them, lowercased, in order (repeats kept).

    "LoRA 微调" and "LoRA微调" -> ["lora", "微调"]; kana and hangul one character each."""
    if text.isascii():  # most text: no pattern to run
        return _plain(text)
    return [w for piece in _pieces(text) for w in piece.words]


def fts_body(text: str) -> tuple[str, str]:
    """The two FTS5 columns of a passage: ``body`` is the text with its Chinese words set
    apart by spaces (anything else untouched), ``subwords`` the dictionary words inside
    its long Chinese words, so a query for 数据 also finds 数据库, below an exact match."""
    if text.isascii():
        return text, ""
    subwords: list[str] = []

    def spaced(m: re.Match) -> str:
        if m.group(2):
            return f" {m.group(2)} "
        cut, subs = _split_subwords(m.group(1))
        subwords.extend(subs)
        return " " + " ".join(cut) + " "

    return _PIECE.sub(spaced, text), " ".join(subwords)


def fts_phrase(term: str) -> str:
    """A term as an FTS5 string (never read as an operator)."""
    return '"' + term.replace('"', '""') + '"'


def query_words(query: str, *, legacy: bool = False) -> list[str]:
    """The words of a query that fts_match searches for (repeats kept, as FTS5 scores them)."""
    return _plain(cjk_spaced(query)) if legacy else words(query)


def fts_match(query: str, leave_out: Collection[str] = (), *, legacy: bool = False,
              max_terms: int = 64) -> str:
    """The FTS5 MATCH expression of a query: any of its words, best-ranked by BM25; a
    Chinese run of several words is also searched as one phrase, so passages with the
    words side by side rank above those that merely contain them. ``leave_out`` (common
    stop words) are dropped unless nothing else is left. ``legacy`` builds the
    one-character form that tables filled before TOKENIZER hold. "" when nothing is left."""
    if legacy:
        terms = query_words(query, legacy=True)
        return " OR ".join(fts_phrase(t) for t in ([t for t in terms if t not in leave_out] or terms)[:max_terms])
    pieces = list(_pieces(query))
    terms = [w for p in pieces for w in p.words]
    kept = [t for t in terms if t not in leave_out] or terms
    phrases = []
    for piece in pieces:
        if not piece.han:
            continue
        # the longest stretches of kept words: a common word would make the phrase slow
        run: list[str] = []
        for w in piece.words + [""]:
            if w and w not in leave_out:
                run.append(w)
                continue
            if 2 <= len(run) <= MAX_PHRASE_WORDS:
                phrases.append(" ".join(run))
            run = []
    return " OR ".join(fts_phrase(t) for t in kept[:max_terms] + list(dict.fromkeys(phrases))[:16])


def word_spans(text: str, han_terms: Collection[str]) -> Iterator[tuple[int, int]]:
    """(start, end) of each Chinese word or dictionary sub-word of ``text`` that is one of
    ``han_terms``: where keyword search matched, for highlights. Runs of Chinese that
    cannot hold a term are not cut at all (highlights stay cheap)."""
    if not han_terms:
        return
    for m in _HAN_WORD.finditer(text):
        run = m.group(0)
        if not any(t in run for t in han_terms):
            continue
        for w, s, e in _subwords(run):
            if w in han_terms:
                yield m.start() + s, m.start() + e


def cjk_spaced(text_: str) -> str:
    """Put spaces between CJK characters: the one-token-per-character form of catalogs
    filled before TOKENIZER, still used to query them until the writer rebuilds them."""
    return _OLD_CJK.sub(r" \1 ", text_)
