"""Fashion-MNIST from the ``fashion-mnist`` asset (the four idx ``.gz`` files)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Literal

import numpy as np

from nml.data.image_set import ImageSet

__all__ = ["FASHION_MNIST_CLASSES", "load_fashion_mnist", "read_idx_gz"]

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

_IDX_UBYTE = 0x08  # idx type code of unsigned bytes


def read_idx_gz(path: str | Path) -> np.ndarray:
    """A gzipped idx file (``0 0 type ndim``, big-endian int32 dims, then data) as uint8 array."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE:
        raise ValueError(f"{path}: not an unsigned-byte idx file (header {data[:4].hex()})")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4).astype(int)
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {tuple(dims)} = {int(np.prod(dims))} bytes, found {body.size}")
    return body.reshape(tuple(dims))


def load_fashion_mnist(split: Literal["train", "test"] = "train", folder: str | Path | None = None) -> ImageSet:
    """Fashion-MNIST ``train`` (60,000) or ``test`` (10,000): 28×28 uint8, 10 classes.

    ``folder`` defaults to the verified ``fashion-mnist`` asset (``nml assets fetch fashion-mnist``).
    """
    if split not in ("train", "test"):
        raise ValueError(f"load_fashion_mnist: split must be 'train' or 'test', got {split!r}")
    if folder is None:
        from nml.assets import asset_path

        folder = asset_path("fashion-mnist")
    prefix = "train" if split == "train" else "t10k"
    images = read_idx_gz(Path(folder) / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx_gz(Path(folder) / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return ImageSet(f"fashion-mnist/{split}", images, labels, FASHION_MNIST_CLASSES)
