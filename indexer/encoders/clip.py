"""CLIP through open_clip: images and text into one space."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from indexer.encoders import ModelIdentity, file_fingerprint, hub_reachable, language_list, normalize
from indexer.errors import ModelUnavailableError

log = logging.getLogger(__name__)


class ClipEncoder:
    """Owns one open_clip model; loads it on first use.

    ``spec`` is ``local-dir:/path`` (open_clip_config.json + weights),
    ``NAME:TAG`` for a built-in model with a pretrained tag, or ``NAME:/file.pt``.
    """

    space = "clip"

    def __init__(self, spec: str, device: str = "cpu", offline: bool = False, quantize: str = "none",
                 cache_dir: str | None = None):
        self.spec = spec
        self.device = device
        self.offline = offline
        self.quantize = quantize
        self.cache_dir = cache_dir
        self._model = None
        self._tokenizer = None
        self._identity: ModelIdentity | None = None
        self._lock = threading.Lock()
        self.image_size = 224
        self.mean = (0.48145466, 0.4578275, 0.40821073)
        self.std = (0.26862954, 0.26130258, 0.27577711)

    # -- loading -------------------------------------------------------------------

    def _resolve(self) -> tuple[str, str | None, str, str, str]:
        """-> (model name for open_clip, its pretrained arg, identity name, identity tag,
        weights file or "" when it is yet to be downloaded)."""
        spec = self.spec
        if spec.startswith("local-dir:"):
            folder = Path(spec[len("local-dir:"):]).expanduser()
            config = folder / "open_clip_config.json"
            if not config.is_file():
                raise ModelUnavailableError(
                    f"CLIP model folder {folder} has no open_clip_config.json; point --clip-model "
                    f"at a folder in open_clip's local-dir format")
            weights = sorted(p for p in folder.iterdir()
                             if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
            if not weights:
                raise ModelUnavailableError(f"CLIP model folder {folder} holds no weights file")
            return f"local-dir:{folder}", None, f"local-dir:{folder.name}", "", str(weights[0])
        name, _, tag = spec.partition(":")
        import open_clip

        if name not in open_clip.list_models():
            raise ModelUnavailableError(f"unknown CLIP architecture {name!r} in {spec!r}")
        if tag == "random":  # untrained weights: for speed benchmarks only
            return name, None, name, "random", ""
        if tag and os.path.isfile(tag):
            return name, tag, name, Path(tag).name, tag
        if not tag:
            raise ModelUnavailableError(
                f"CLIP spec {spec!r} names no weights; use NAME:PRETRAINED_TAG, NAME:/file.pt "
                f"or local-dir:/path")
        cfg = open_clip.get_pretrained_cfg(name, tag)
        if not cfg:
            raise ModelUnavailableError(
                f"{name} has no pretrained tag {tag!r}; known tags: "
                f"{', '.join(open_clip.list_pretrained_tags_by_model(name))}")
        cached = self._cached_weights(cfg)
        if cached:
            return name, cached, name, tag, cached
        if self.offline:
            raise ModelUnavailableError(
                f"CLIP weights {name} {tag} are not in the local cache and downloads are off "
                f"(SEARCHD_OFFLINE). Run once on a machine with internet, or use "
                f"--models demo / --clip-model local-dir:/path")
        if not hub_reachable():
            raise ModelUnavailableError(
                f"CLIP weights {name} {tag} are not cached and the model hub cannot be reached. "
                f"Run `searchd index` once on a machine with internet to cache them, or use "
                f"--models demo / --clip-model local-dir:/path")
        return name, tag, name, tag, ""

    def _cached_weights(self, cfg: dict) -> str | None:
        hub = cfg.get("hf_hub", "")
        if not hub:
            return None
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        repo, filename = os.path.split(hub)
        for candidate in filter(None, ("open_clip_model.safetensors",
                                       filename.rsplit(".", 1)[0] + ".safetensors" if filename else "",
                                       filename or "open_clip_pytorch_model.bin")):
            found = try_to_load_from_cache(repo, candidate, cache_dir=self.cache_dir)
            if isinstance(found, str):
                return found
        return None

    def load(self) -> "ClipEncoder":
        with self._lock:
            if self._model is not None:
                return self
            model_name, pretrained, ident_name, ident_tag, weights = self._resolve()
            import open_clip
            import torch

            try:
                model, _, _ = open_clip.create_model_and_transforms(
                    model_name, pretrained=pretrained, device=self.device,
                    precision="fp16" if self.device.startswith("cuda") else "fp32",
                    cache_dir=self.cache_dir, weights_only=True)
                tokenizer = open_clip.get_tokenizer(model_name)
            except ModelUnavailableError:
                raise
            except Exception as exc:  # open_clip raises many kinds; say which model failed
                raise ModelUnavailableError(f"cannot load CLIP model {self.spec!r}: {exc}") from exc
            model.eval()
            if self.quantize == "int8" and not self.device.startswith("cuda"):
                model.visual = torch.ao.quantization.quantize_dynamic(
                    model.visual, {torch.nn.Linear}, dtype=torch.qint8)
            pcfg = getattr(model.visual, "preprocess_cfg", {}) or {}
            size = pcfg.get("size", getattr(model.visual, "image_size", 224))
            self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
            self.mean = tuple(pcfg.get("mean", self.mean))
            self.std = tuple(pcfg.get("std", self.std))
            dim = int(model.text_projection.shape[1]) if getattr(model, "text_projection", None) is not None \
                else int(model.encode_text(tokenizer(["x"]).to(self.device)).shape[1])
            if not weights and pretrained:  # just downloaded into the cache
                weights = self._cached_weights(open_clip.get_pretrained_cfg(model_name, pretrained)) or ""
            self._identity = ModelIdentity(
                name=ident_name, pretrained=ident_tag,
                weights_hash=file_fingerprint(weights, full=False) if weights else "", dim=dim,
                languages=clip_languages(model_name))
            self._tokenizer = tokenizer
            self._model = model
        return self

    @property
    def identity(self) -> ModelIdentity:
        self.load()
        return self._identity

    @property
    def model(self):
        self.load()
        return self._model

    # -- encoding ------------------------------------------------------------------

    def pixels_to_tensor(self, pixels: np.ndarray):
        """uint8 (n, S, S, 3) -> normalised float tensor (n, 3, S, S) on the device."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        if self.device.startswith("cuda"):
            x = x.half()
        return x

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Encode images already resized/cropped to ``image_size`` (uint8 (n, S, S, 3))."""
        import torch

        model = self.model
        if len(pixels) == 0:
            return np.zeros((0, self.identity.dim), dtype=np.float32)
        with torch.inference_mode():
            out = model.encode_image(self.pixels_to_tensor(pixels))
        return normalize(out.float().cpu().numpy())

    def encode_images(self, images) -> np.ndarray:
        """Encode PIL images (any size, RGB)."""
        from indexer.extract import fit_square

        self.load()
        if not images:
            return np.zeros((0, self.identity.dim), dtype=np.float32)
        pixels = np.stack([fit_square(im.convert("RGB"), self.image_size) for im in images])
        return self.encode_pixels(pixels)

    def encode_texts(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        import torch

        model = self.model
        if not texts:
            return np.zeros((0, self.identity.dim), dtype=np.float32)
        outs = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = self._tokenizer(texts[start:start + batch_size]).to(self.device)
                outs.append(self._encode_tokens(model, tokens).float().cpu().numpy())
        return normalize(np.concatenate(outs))

    @staticmethod
    def _encode_tokens(model, tokens):
        """``model.encode_text``, but only over the tokens up to the longest end-of-text.

        CLIP's text tower is causal and pools at the end-of-text token, so the padding
        after it cannot change the result: skipping it gives the same vectors, and a
        short query costs a few positions instead of the whole context (77 for ViT-B-32).
        Other text towers (non-causal, other pooling) go through ``encode_text`` as is.
        """
        import torch

        mask = getattr(model, "attn_mask", None)
        if (type(model).__name__ != "CLIP" or mask is None or getattr(model, "text_pool_type", "") != "argmax"
                or not hasattr(model, "positional_embedding")):
            return model.encode_text(tokens)
        eot = tokens.argmax(dim=-1)
        length = int(eot.max()) + 1
        cast = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens[:, :length]).to(cast) + model.positional_embedding[:length].to(cast)
        x = model.transformer(x, attn_mask=mask[:length, :length])
        x = model.ln_final(x)[torch.arange(x.shape[0], device=x.device), eot]
        projection = model.text_projection
        if projection is None:
            return x
        return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


#: open_clip architectures whose text tower was trained on many languages
MULTILINGUAL_ARCHITECTURES = ("xlm-roberta", "nllb", "multilingual", "mt5")


def clip_languages(model_name: str) -> tuple[str, ...]:
    """Which languages a CLIP model's text tower reads: a local folder says so in its config
    (``languages``, at the top or in ``demo_train``); open_clip's multilingual architectures
    read many; every other open_clip model was trained on English captions."""
    if model_name.startswith("local-dir:"):
        try:
            config = json.loads((Path(model_name[len("local-dir:"):]) / "open_clip_config.json").read_text())
        except (OSError, ValueError):
            return ()
        return language_list(config.get("languages") or (config.get("demo_train") or {}).get("languages"))
    if any(tag in model_name.lower() for tag in MULTILINGUAL_ARCHITECTURES):
        return ("multilingual",)
    return ("en",)
