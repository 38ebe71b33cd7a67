"""Turning offline image arrays into model input."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def gray_transform_id(size: int) -> str:
    """Names the transform below in cache keys; change it whenever the transform changes."""
    return f"gray-{size}px-bilinear-aa-pm1"


def gray_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 N×H×W grayscale images -> float32 N×1×size×size in [-1, 1].

    Bilinear resizing with antialiasing, so 8×8 UCI digits and 28×28 MNIST-style images reach
    the same resolution as the pre-training images.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape N×H×W, got {images.dtype} {images.shape}")
    x = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp_(0.0, 1.0).sub_(0.5).div_(0.5).contiguous()
