"""SearchEngine pieces that need no index: batching, snippets, fusion."""

from __future__ import annotations

import threading
import time

import numpy as np

from searchd.engine import QueryBatcher, make_snippet, rrf


def test_concurrent_queries_share_model_calls_and_get_their_own_rows():
    calls = []

    def encode(texts):
        calls.append(list(texts))
        time.sleep(0.05)  # a model call takes a while; queries arriving meanwhile queue up
        return np.array([[len(t), i] for i, t in enumerate(texts)], dtype=np.float32)

    batcher = QueryBatcher(encode)
    texts = [f"query {'x' * i}" for i in range(12)]
    results = {}
    threads = [threading.Thread(target=lambda t=t: results.__setitem__(t, batcher(t))) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[t][0] == len(t) for t in texts)
    assert len(calls) < len(texts)
    assert sorted(x for call in calls for x in call) == sorted(texts)


def test_a_failing_model_call_reaches_every_waiter():
    def encode(texts):
        raise RuntimeError("model exploded")

    batcher = QueryBatcher(encode)
    errors = []

    def ask():
        try:
            batcher("q")
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert errors == ["model exploded"] * 4


def test_batched_vectors_equal_single_ones(demo_encoders):
    clip, text = demo_encoders
    queries = ["a red circle", "turning spoken audio into written words", "IndexIVFPQ"]
    for encoder in (clip, text):
        together = encoder.encode_texts(queries)
        alone = np.stack([encoder.encode_texts([q])[0] for q in queries])
        np.testing.assert_allclose(together, alone, atol=1e-4)


def test_snippet_marks_whole_words_and_escapes_html():
    snippet = make_snippet("Use <b>FAISS</b> for faster search; FAISSLIKE is not it.", ["faiss", "search"])
    assert "&lt;b&gt;<mark>FAISS</mark>&lt;/b&gt;" in snippet
    assert "<mark>search</mark>" in snippet and "FAISSLIKE" in snippet and "<mark>FAISSLIKE" not in snippet


def test_rrf_rewards_agreement():
    fused = [i for i, _ in rrf([[1, 2, 3], [3, 1, 4]])]
    assert fused[0] == 1 and set(fused) == {1, 2, 3, 4}
