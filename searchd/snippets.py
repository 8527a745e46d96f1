"""Snippets: the part of a passage that best shows why it was found, matches in <mark>.

What counts as a word comes from indexer.keywords, the code keyword search uses, so a
highlight marks what BM25 matched: whole English words (never "faiss" inside
"faisslike"), whole Chinese words and phrases (注意力机制 -> 注意力 + 机制, never the lone
characters of unrelated words).
"""

from __future__ import annotations

import html
import re

from indexer import keywords
from indexer.keywords import STOP_WORDS

# kana, hangul and CJK symbols: searched one character at a time
_SINGLE = re.compile(f"[{keywords.SINGLE_CHARS}]")
# the same without hangul: Korean writes spaces, so query words keep its words whole
_QUERY_PIECE = re.compile(f"([{keywords.HAN_CHARS}]+)|([\u2e80-\u33ff\u4dc0-\u4dff])")
_PLAIN_TERM = re.compile(r"\w+")
# a window edge this close to a space moves to it rather than cut a word in two
_SNAP = 20


def query_terms(text: str) -> list[str]:
    """The words of a query to mark in snippets, lowercased, each once: Chinese cut into
    words by the segmenter, kana one character each, other words of two or more
    characters (or digits), kept whole (hangul included: its words carry particles)."""
    terms: list[str] = []
    pos = 0
    for m in _QUERY_PIECE.finditer(text):
        terms += _plain_terms(text[pos:m.start()])
        if m.group(1):
            terms += keywords.segment(m.group(1))
        elif m.group(2).isalnum():  # kana, not CJK punctuation
            terms.append(m.group(2))
        pos = m.end()
    terms += _plain_terms(text[pos:])
    return list(dict.fromkeys(terms))


def _plain_terms(text: str) -> list[str]:
    return [t for t in _PLAIN_TERM.findall(text.lower()) if len(t) > 1 or t.isdigit()]


def _is_letter(ch: str) -> bool:
    """A letter or digit that would continue a word; a CJK neighbour does not ("用LoRA微调")."""
    return ch.isalnum() and not (keywords.is_han(ch) or _SINGLE.match(ch))


def _matches(passage: str, terms: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, term) of every match of a term in the passage, by start."""
    han = {t for t in terms if keywords.is_han(t)}
    single = {t for t in terms if len(t) == 1 and _SINGLE.match(t)}
    plain = [t for t in terms if t not in han and t not in single]
    found = [(s, e, passage[s:e]) for s, e in keywords.word_spans(passage, han)]
    for ch in single:
        found += [(m.start(), m.end(), ch) for m in re.finditer(re.escape(ch), passage)]
    if plain:
        pattern = re.compile("|".join(re.escape(t) for t in sorted(plain, key=len, reverse=True)), re.IGNORECASE)
        for m in pattern.finditer(passage):
            before = passage[m.start() - 1] if m.start() else " "
            after = passage[m.end()] if m.end() < len(passage) else " "
            if not (_is_letter(before) or _is_letter(after)):  # not inside a longer word
                found.append((m.start(), m.end(), m.group(0).lower()))
    return sorted(found)


def _window(passage: str, found: list[tuple[int, int, str]], width: int) -> tuple[int, int]:
    """The stretch of ``width`` characters around the densest cluster of matches: the most
    different terms, then the most matches, then the earliest."""
    if len(passage) <= width:
        return 0, len(passage)
    lo = hi = 0
    if found:
        best, best_key, j = (0, 0), None, 0
        for i in range(len(found)):
            j = max(j, i)
            while j + 1 < len(found) and found[j + 1][1] - found[i][0] <= width:
                j += 1
            key = (len({t for _, _, t in found[i:j + 1]}), j + 1 - i)
            if best_key is None or key > best_key:
                best, best_key = (i, j), key
        lo, hi = found[best[0]][0], max(e for _, e, _ in found[best[0]:best[1] + 1])
    start = max(0, min(lo - (width - (hi - lo)) // 2, len(passage) - width))
    end = start + width
    # edges on a space rather than inside a word, when one is near and no match is lost
    if start > 0 and _is_letter(passage[start - 1]):
        space = passage.find(" ", start, min(lo, start + _SNAP))
        if space >= 0:
            start = space + 1
    if end < len(passage) and _is_letter(passage[end]):
        space = passage.rfind(" ", max(hi, end - _SNAP), end)
        if space >= 0:
            end = space
    return start, end


def make_snippet(passage: str, terms: list[str], width: int = 240) -> str:
    """HTML-escaped excerpt of about ``width`` characters around the densest cluster of
    matched terms, matches wrapped in <mark> (adjoining ones in one)."""
    terms = [t for t in terms if t not in STOP_WORDS]
    found = _matches(passage, terms) if terms else []
    start, end = _window(passage, found, width)
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(passage) else ""
    # overlapping and adjoining matches (数据 in 数据库; 注意力 + 机制) become one mark
    spans: list[list[int]] = []
    for s, e, _ in found:
        if s < start or e > end:
            continue
        if spans and s <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], e)
        else:
            spans.append([s, e])
    out, last = [], start
    for s, e in spans:
        out.append(html.escape(passage[last:s]))
        out.append(f"<mark>{html.escape(passage[s:e])}</mark>")
        last = e
    out.append(html.escape(passage[last:end]))
    return prefix + "".join(out) + suffix
