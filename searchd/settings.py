"""The one place that reads ``SEARCHD_*`` variables.

Every setting is declared once, with its default and help text; the CLI, the
service and the README's configuration table all come from this declaration,
and a test fails when one is undocumented.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import platformdirs

from indexer.errors import BadRequestError

ENV_PREFIX = "SEARCHD_"


def _setting(default: Any, help: str, *, choices: tuple[str, ...] | None = None, secret: bool = False):
    return field(default=default, metadata={"help": help, "choices": choices, "secret": secret})


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("searchd", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Everything configurable about searchd, frozen once built at the edge."""

    data_dir: Path = _setting(None, "Where the catalog, FAISS indexes and thumbnails live "
                              "(default: the per-user data folder, e.g. ~/.local/share/searchd).")
    models: str = _setting("default", "Model preset: `default` (ViT-B-32 laion2b_s34b_b79k + "
                           "multilingual-e5-small, fetched once) or `demo` (a tiny offline CLIP + "
                           "multilingual-e5-small converted offline by `make`).",
                           choices=("default", "demo"))
    clip_model: str = _setting("", "CLIP model, overriding the preset: `NAME:PRETRAINED_TAG` "
                               "(e.g. ViT-B-32:laion2b_s34b_b79k), `local-dir:/path` or "
                               "`NAME:/path/to/checkpoint.pt`.")
    text_model: str = _setting("", "Sentence-transformer, overriding the preset: a hub id, a "
                               "local folder, or `package:NAME` for a model shipped in a Python package.")
    device: str = _setting("auto", "Where models run: `auto` (CUDA when present), `cpu` or `cuda`.",
                           choices=("auto", "cpu", "cuda"))
    offline: bool = _setting(False, "Never download a model; fail at once when one is not cached.")
    batch_size: int = _setting(32, "Images (or text passages) encoded per model call while indexing.")
    workers: int = _setting(0, "Decoding processes while indexing (0 = one per CPU core).")
    exclude: tuple[str, ...] = _setting((), "Glob patterns of paths to leave out, comma-separated "
                                        "in the environment (e.g. `*/.git/*,*.tmp`).")
    follow_links: bool = _setting(False, "Follow symlinks whose targets lie outside the indexed folders "
                                  "(off: they are skipped and reported). What they reach is then indexed "
                                  "and served by /api/items/{id}/file like any indexed file.")
    gpu_decode: str = _setting("auto", "JPEG decoding on the GPU beside the decoding processes, when "
                               "indexing on CUDA: `auto` (the JPEGs that find every process busy), `all` "
                               "or `off`.", choices=("auto", "all", "off"))
    quantize: str = _setting("none", "Quantize the CLIP image tower for CPU indexing: `none` or `int8`.",
                             choices=("none", "int8"))
    index_type: str = _setting("auto", "FAISS index per space: `auto` (exact Flat while small, IVF from "
                               "SEARCHD_IVF_THRESHOLD vectors), `flat` or `ivf`.", choices=("auto", "flat", "ivf"))
    ivf_threshold: int = _setting(30_000, "Vectors in a space from which `auto` switches to an IVF index "
                                  "(exact search of 30,000 512-d vectors takes about 4.5 ms on 2 cores).")
    ivf_codec: str = _setting("SQ8", "How IVF stores vectors: `Flat` (exact codes), `SQ8` (1 byte per "
                              "dimension) or `PQ16`-style product quantization (smallest).")
    vector_dtype: str = _setting("float32", "How vectors are stored in the catalog: `float32` or `float16` "
                                 "(half the size).", choices=("float32", "float16"))
    mmap_indexes: bool = _setting(True, "Memory-map FAISS files read-only when serving, so worker "
                                  "processes share one copy.")
    max_image_pixels: int = _setting(178_956_970, "Images with more pixels than this are skipped as "
                                     "decompression bombs.")
    host: str = _setting("127.0.0.1", "Address `searchd serve` binds to.")
    port: int = _setting(8000, "Port `searchd serve` listens on.")
    processes: int = _setting(1, "Processes `searchd serve` answers with. Each loads the models (about "
                              "1.2 GB with ViT-B-32); they share the memory-mapped indexes.")
    api_key: str = _setting("", "When set, /api/* requires it as `Authorization: Bearer KEY` or "
                            "`X-API-Key: KEY`.", secret=True)
    max_upload_mb: float = _setting(20.0, "Largest image upload accepted by the API, in megabytes.")
    cors_origins: tuple[str, ...] = _setting((), "Origins allowed by CORS, comma-separated (off when empty).")
    query_cache_size: int = _setting(512, "Query embeddings kept in the LRU cache.")
    llm_base_url: str = _setting("", "OpenAI-compatible server for answers, e.g. "
                                 "http://127.0.0.1:8080/v1 (LocalAI, llama.cpp, Ollama, vLLM). Off when empty.")
    llm_model: str = _setting("", "Model name to ask the LLM server for.")
    llm_api_key: str = _setting("", "API key for the LLM server, if it needs one.", secret=True)
    llm_timeout: float = _setting(60.0, "Seconds to wait for a whole LLM answer.")
    llm_connect_timeout: float = _setting(5.0, "Seconds to wait for the LLM server to accept a connection.")
    llm_context_chars: int = _setting(6000, "Budget of source text put into the LLM prompt, in characters.")
    llm_vision: bool = _setting(False, "Send image thumbnails to the LLM as image parts (vision models).")

    def __post_init__(self) -> None:
        if self.data_dir is None:
            object.__setattr__(self, "data_dir", default_data_dir())
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise BadRequestError(
                    f"{f.name} must be one of {', '.join(choices)}, not {value!r}")
        if self.batch_size < 1:
            raise BadRequestError("batch_size must be at least 1")
        if self.workers < 0:
            raise BadRequestError("workers must be 0 (one per core) or more")
        if self.processes < 1:
            raise BadRequestError("processes must be at least 1")

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_base_url)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def index_policy(self):
        from indexer.vectors import IndexPolicy

        return IndexPolicy(kind=self.index_type, ivf_threshold=self.ivf_threshold, codec=self.ivf_codec)

    @property
    def catalog_dtype(self) -> str:
        return "f2" if self.vector_dtype == "float16" else "f4"



def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def describe_settings() -> list[dict[str, Any]]:
    """Name, environment variable, default and help of every setting (for docs and --help)."""
    out = []
    for f in fields(Settings):
        default = f.default
        if f.name == "data_dir":
            default = "per-user data folder"
        elif isinstance(default, tuple):
            default = ",".join(default)
        out.append({"name": f.name, "env": env_name(f.name), "default": default,
                    "help": f.metadata["help"], "secret": f.metadata["secret"]})
    return out


def settings_env(settings: Settings) -> dict[str, str]:
    """Settings as ``SEARCHD_*`` variables, for processes that rebuild them (``load_settings``)."""
    out = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if isinstance(value, bool):
            value = "1" if value else "0"
        elif isinstance(value, tuple):
            value = ",".join(value)
        out[env_name(f.name)] = str(value)
    return out


def parse_bool(raw: str) -> bool:
    """1/true/yes/on or 0/false/no/off, in any case; ValueError otherwise."""
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _convert(f: dataclasses.Field, raw: Any) -> Any:
    if not isinstance(raw, str):
        return tuple(raw) if f.type in ("tuple[str, ...]",) and raw is not None else raw
    kind = f.type
    try:
        if kind == "bool":
            return parse_bool(raw) if raw.strip() else False
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "tuple[str, ...]":
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        if kind == "Path":
            return Path(raw)
    except ValueError:
        raise BadRequestError(f"{env_name(f.name)}={raw!r} is not a valid {kind}") from None
    return raw


def load_settings(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from defaults < ``SEARCHD_*`` variables < explicit overrides (CLI flags).

    An override of ``None`` (a flag not given) leaves the lower layers alone.
    """
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if overrides.get(f.name) is not None and overrides.get(f.name) != ():
            values[f.name] = _convert(f, overrides[f.name])
        elif env_name(f.name) in environ:
            values[f.name] = _convert(f, environ[env_name(f.name)])
    return Settings(**values)
