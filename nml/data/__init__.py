"""Labelled image sets: ``ImageSet`` (uint8 arrays in memory) and its loaders.

``fashion_mnist.load_fashion_mnist``, ``digits.load_digit_domain`` (mnist-5k, uci-digits,
printed-digits) and ``corruptions.corrupt`` all return ``ImageSet``.
"""

from nml.data.image_set import ImageSet, ImageSetDataset

__all__ = ["ImageSet", "ImageSetDataset"]
