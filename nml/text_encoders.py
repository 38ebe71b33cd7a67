"""Frozen text encoders: anything that maps a list of texts to a feature matrix."""

from __future__ import annotations

import logging
import os
from typing import Protocol

import numpy as np

from nml.cache import atomic_save_npz, stable_hash
from nml.locations import features_dir

log = logging.getLogger("nml.text")


class TextEncoder(Protocol):
    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


class SentenceTransformerEncoder:
    """A sentence-transformers model loaded from a fetched offline asset (never from a hub)."""

    def __init__(self, asset: str = "all-minilm-l6-v2", *, batch_size: int = 64, device: str = "cpu"):
        from nml import assets

        self.name = asset
        self.path = assets.asset_path(asset)
        self.batch_size = batch_size
        self.device = device
        self._model = None

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.path), device=self.device)
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        return np.asarray(model.encode(list(texts), batch_size=self.batch_size, show_progress_bar=False,
                                       convert_to_numpy=True), dtype=np.float32)


def cached_text_embeddings(encoder: TextEncoder, texts: list[str]) -> np.ndarray:
    """Embeddings of ``texts``, cached under ``NML_HOME/features`` by encoder name and texts."""
    key = stable_hash({"encoder": encoder.name, "texts": list(texts)}, length=24)
    path = features_dir() / f"text-{key}.npz"
    if path.exists():
        try:
            with np.load(path) as f:
                log.info("reusing text embeddings %s (%d texts)", path.name, len(texts))
                return f["features"]
        except Exception as err:
            log.warning("ignoring unreadable text cache %s (%s)", path, err)
    feats = encoder.encode(list(texts))
    atomic_save_npz(path, {"features": feats})
    log.info("cached text embeddings %s (%d texts, dim %d)", path.name, *feats.shape)
    return feats
