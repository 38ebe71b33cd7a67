"""``ImageSet``: a named set of grayscale uint8 images with integer labels, and its torch adapter."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

__all__ = ["ImageSet", "ImageSetDataset"]


@dataclass(frozen=True, eq=False)
class ImageSet:
    """``images``: uint8 ``N×H×W`` (white object on black, like MNIST); ``labels``: int64 ``N``
    indexing ``classes``."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        images, labels = np.asarray(self.images), np.asarray(self.labels)
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(
                f"ImageSet {self.name!r}: images must be uint8 N×H×W, got {images.dtype} with shape {images.shape}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                f"ImageSet {self.name!r}: labels must be 1-D with one label per image "
                f"({len(images)} images), got shape {labels.shape}"
            )
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"ImageSet {self.name!r}: labels must be integers, got {labels.dtype}")
        classes = tuple(str(c) for c in self.classes)
        if not classes:
            raise ValueError(f"ImageSet {self.name!r}: classes must not be empty")
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(
                f"ImageSet {self.name!r}: labels must lie in [0, {len(classes) - 1}] "
                f"(one per class), got [{labels.min()}, {labels.max()}]"
            )
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))
        object.__setattr__(self, "classes", classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        h, w = self.images.shape[1:]
        return f"ImageSet({self.name!r}, {len(self)} images {h}x{w}, {len(self.classes)} classes)"

    @property
    def image_size(self) -> tuple[int, int]:
        return self.images.shape[1], self.images.shape[2]

    def class_counts(self) -> dict[str, int]:
        """Images per class name, every class listed (0 when absent)."""
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts, strict=True)}

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> ImageSet:
        """The images at ``indices`` (in that order), same classes."""
        idx = np.asarray(indices, dtype=np.int64)
        return ImageSet(name or self.name, self.images[idx], self.labels[idx], self.classes)

    def stratified_split(
        self,
        test_size: float | int | None = None,
        *,
        n_train: int | None = None,
        seed: int,
    ) -> tuple[ImageSet, ImageSet]:
        """Split into (train, test) keeping class proportions (scikit-learn ``train_test_split``).

        Give ``test_size`` (fraction or count) or ``n_train`` (count); the rest is the other side.
        Index order inside each part is ascending so that results do not depend on shuffling.
        """
        from sklearn.model_selection import train_test_split

        if (test_size is None) == (n_train is None):
            raise ValueError("stratified_split: give exactly one of test_size and n_train")
        idx = np.arange(len(self))
        train_idx, test_idx = train_test_split(
            idx, test_size=test_size, train_size=n_train, stratify=self.labels, random_state=seed
        )
        return (self.subset(np.sort(train_idx), f"{self.name}/train"),
                self.subset(np.sort(test_idx), f"{self.name}/test"))

    def stratified_subset(self, n: int, *, seed: int) -> ImageSet:
        """``n`` images with the class proportions of the whole (all of them if ``n >= len``)."""
        if n >= len(self):
            return self
        if n < len(self.classes):
            raise ValueError(
                f"stratified_subset of {self.name!r}: n={n} is smaller than the {len(self.classes)} classes"
            )
        from sklearn.model_selection import train_test_split

        chosen, _ = train_test_split(np.arange(len(self)), train_size=n, stratify=self.labels, random_state=seed)
        return self.subset(np.sort(chosen))

    def resized(self, size: int) -> ImageSet:
        """Every image resized to ``size×size`` (PIL bilinear, antialiased when shrinking)."""
        if self.image_size == (size, size):
            return self
        out = np.empty((len(self), size, size), dtype=np.uint8)
        for i, img in enumerate(self.images):
            out[i] = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
        return ImageSet(self.name, out, self.labels, self.classes)


class ImageSetDataset(torch.utils.data.Dataset):
    """A ``torch.utils.data.Dataset`` over an ``ImageSet``: ``(float 1×H×W in [0, 1], label)``.

    ``transform`` (optional) receives that tensor and returns the tensor to yield.
    """

    def __init__(self, image_set: ImageSet, transform: Callable | None = None) -> None:
        self.image_set = image_set
        self.transform = transform

    def __len__(self) -> int:
        return len(self.image_set)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.image_set.images[index]).to(torch.float32).div_(255.0).unsqueeze(0)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.image_set.labels[index])
