"""Tiny datasets and models written in the paper profile's real on-disk formats, shared by the
tests of the paper path (importable from any test: pytest puts ``tests/`` on ``sys.path`` with its
``conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_image_folder(root: Path, splits=("train", "val"), classes=("cat", "dog", "eel"), per_class: int = 4,
                       seed: int = 0, spread: float = 20.0) -> None:
    """``<root>/<split>/<class>/<i>.png``: 20×20 RGB images coloured by class (so features differ by class)."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for c, name in enumerate(classes):
            folder = Path(root) / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = np.clip(rng.normal(60 + 70 * c, spread, size=(20, 20, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i}.png")


def tiny_vit(folder: Path) -> Path:
    """A one-layer transformers ViT (16-d, 32 px) saved in its Hugging Face folder layout."""
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       image_size=32, patch_size=8)
    ViTModel(config).save_pretrained(folder)
    return folder
