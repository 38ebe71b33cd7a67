"""Image sets: ImageSet behaviour, the loaders (real assets), printed digits, corruptions."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from nml import assets
from nml.data import ImageSet, ImageSetDataset
from nml.data.corruptions import CORRUPTIONS, CORRUPTIONS_FAST, corrupt
from nml.data.digits import (
    DIGIT_CLASSES,
    digit_fonts,
    load_digit_domain,
    load_uci_digits,
    render_printed_digits,
)
from nml.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist


def _needs(asset: str) -> None:
    result = assets.verify(asset)
    if not result.ok:
        # `make test` fetches the assets first, so in CI a missing asset is a failure, not a skip
        message = f"asset {asset} not fetched ({result}); run `nml assets fetch {asset}`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _toy(n_per_class: int = 10, size: int = 6) -> ImageSet:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), n_per_class)
    images = rng.integers(0, 256, size=(len(labels), size, size), dtype=np.uint8)
    return ImageSet("toy", images, labels, ("a", "b", "c"))


# ---- ImageSet ---------------------------------------------------------------------------


def test_image_set_validates_its_arrays():
    with pytest.raises(ValueError, match="uint8 N×H×W"):
        ImageSet("x", np.zeros((2, 4, 4), dtype=np.float32), np.zeros(2, dtype=int), ("a",))
    with pytest.raises(ValueError, match="one label per image"):
        ImageSet("x", np.zeros((2, 4, 4), dtype=np.uint8), np.zeros(3, dtype=int), ("a",))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        ImageSet("x", np.zeros((2, 4, 4), dtype=np.uint8), np.array([0, 2]), ("a", "b"))
    ok = ImageSet("x", np.zeros((2, 4, 4), dtype=np.uint8), np.array([0, 1], dtype=np.int32), ["a", "b"])
    assert ok.labels.dtype == np.int64 and ok.classes == ("a", "b") and len(ok) == 2


def test_subset_split_and_counts():
    toy = _toy()
    assert toy.class_counts() == {"a": 10, "b": 10, "c": 10}
    part = toy.subset([3, 0], name="two")
    assert part.name == "two" and np.array_equal(part.images[1], toy.images[0])
    train, test = toy.stratified_split(test_size=0.3, seed=1)
    assert len(train) == 21 and test.class_counts() == {"a": 3, "b": 3, "c": 3}
    again, _ = toy.stratified_split(test_size=0.3, seed=1)
    assert np.array_equal(train.images, again.images)
    train, _ = toy.stratified_split(n_train=6, seed=0)
    assert train.class_counts() == {"a": 2, "b": 2, "c": 2}
    assert toy.stratified_subset(9, seed=0).class_counts() == {"a": 3, "b": 3, "c": 3}
    with pytest.raises(ValueError, match="exactly one"):
        toy.stratified_split(seed=0)


def test_resized_and_torch_adapter():
    toy = _toy(size=8).resized(16)
    assert toy.images.shape == (30, 16, 16) and toy.images.dtype == np.uint8
    dataset = ImageSetDataset(toy, transform=lambda x: x * 2)
    x, y = dataset[11]
    assert isinstance(dataset, torch.utils.data.Dataset) and len(dataset) == 30
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32 and y == 1
    assert torch.allclose(x, torch.from_numpy(toy.images[11]).float() / 255 * 2)


# ---- loaders -----------------------------------------------------------------------------


def test_fashion_mnist_both_splits():
    _needs("fashion-mnist")
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert set(train.class_counts().values()) == {6000} and set(test.class_counts().values()) == {1000}
    assert train.classes == FASHION_MNIST_CLASSES and train.classes[0] == "T-shirt/top"
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion_mnist("val")


def test_mnist_5k():
    _needs("mnist-5k")
    digits = load_digit_domain("mnist-5k")
    assert digits.images.shape == (5000, 28, 28) and digits.images.dtype == np.uint8
    assert set(digits.class_counts().values()) == {500} and digits.classes == DIGIT_CLASSES
    assert digits.images.max() == 255 and digits.images[:, 0, 0].max() == 0  # ink on black


def test_uci_digits():
    digits = load_uci_digits()
    assert digits.images.shape == (1797, 8, 8) and digits.images.dtype == np.uint8
    assert digits.images.max() == 255 and len(digits.class_counts()) == 10


def test_unknown_digit_domain():
    with pytest.raises(KeyError, match="unknown digit domain 'svhn'.*printed-digits"):
        load_digit_domain("svhn")


# ---- printed digits ------------------------------------------------------------------------


def test_symbol_fonts_are_excluded():
    names = {p.name for p in digit_fonts()}
    assert "DejaVuSans.ttf" in names and "cmr10.ttf" in names
    assert not names & {"cmsy10.ttf", "cmex10.ttf", "STIXSizFourSymReg.ttf", "LastResortHE-Regular.ttf"}


def test_printed_digits_are_deterministic_and_distinct():
    a = render_printed_digits(100, seed=3)
    b = render_printed_digits(100, seed=3)
    other = render_printed_digits(100, seed=4)
    assert a.images.shape == (1000, 28, 28) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, other.images)
    assert set(a.class_counts().values()) == {100}
    assert a.images[:, 0, :].mean() < 5 and a.images.max() == 255  # white on black
    # a nearest-centroid classifier from one seed recognises digits rendered with another
    x_train = a.images.reshape(len(a), -1) / 255.0
    centroids = np.stack([x_train[a.labels == c].mean(0) for c in range(10)])
    x_test = other.images.reshape(len(other), -1) / 255.0
    predicted = ((x_test[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (predicted == other.labels).mean() > 0.8


def test_printed_digits_other_size_and_domain_defaults():
    small = load_digit_domain("printed-digits", n_per_class=2, size=16, seed=1)
    assert small.images.shape == (20, 16, 16)
    with pytest.raises(ValueError, match="n_per_class"):
        render_printed_digits(0, seed=0)


# ---- corruptions -----------------------------------------------------------------------------


def test_corruption_is_deterministic_and_keeps_global_state():
    toy = render_printed_digits(3, seed=0)
    np.random.seed(123)  # noqa: NPY002 - the global state corrupt() must preserve
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    for name in ("gaussian_noise", "glass_blur", "impulse_noise", "motion_blur"):
        first = corrupt(toy, name, 3, seed=7)
        assert np.array_equal(first.images, corrupt(toy, name, 3, seed=7).images), name
        assert not np.array_equal(first.images, corrupt(toy, name, 3, seed=8).images), name
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    assert first.name == "printed-digits+motion_blur-3" and np.array_equal(first.labels, toy.labels)


@pytest.mark.parametrize("size", [28, 32])
def test_every_corruption_runs_on_small_gray_images(size):
    toy = render_printed_digits(1, size=size, seed=0)
    for name in CORRUPTIONS:
        out = corrupt(toy, name, 5, seed=0)
        assert out.images.shape == toy.images.shape and out.images.dtype == np.uint8
        if name in CORRUPTIONS_FAST:
            assert not np.array_equal(out.images, toy.images), name


def test_corruption_can_upscale_to_the_package_minimum():
    toy = render_printed_digits(1, seed=0)
    out = corrupt(toy, "pixelate", 3, seed=0, min_size=32)
    assert out.images.shape == (10, 28, 28)


def test_corruption_errors_list_valid_values():
    toy = _toy()
    with pytest.raises(ValueError, match="unknown corruption 'rain'.*gaussian_noise"):
        corrupt(toy, "rain", 1, seed=0)
    with pytest.raises(ValueError, match="integer 1..5"):
        corrupt(toy, "fog", 6, seed=0)
    assert len(CORRUPTIONS_FAST) == 14 and "frost" not in CORRUPTIONS_FAST


def test_corrupted_sets_are_cached_and_equal_to_a_fresh_corruption(nml_home, monkeypatch):
    from nml.data import corruptions
    from nml.data.image_set import ImageSet

    rng = np.random.default_rng(0)
    base = ImageSet("toy", rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), np.arange(6) % 2, ("a", "b"))
    fresh = corruptions.corrupt(base, "gaussian_noise", 3, seed=0)
    cached = corruptions.corrupt_cached(base, "gaussian_noise", 3, seed=0)
    assert np.array_equal(cached.images, fresh.images) and cached.name == fresh.name
    assert len(list((nml_home / "features" / "corruptions").glob("*.npz"))) == 1

    def no_compute(*args, **kwargs):
        raise AssertionError("a cached corruption was computed again")

    real = corruptions.corrupt
    monkeypatch.setattr(corruptions, "corrupt", no_compute)
    again = corruptions.corrupt_cached(base, "gaussian_noise", 3, seed=0)
    assert np.array_equal(again.images, fresh.images) and np.array_equal(again.labels, base.labels)
    monkeypatch.setattr(corruptions, "corrupt", real)
    other = corruptions.corrupt_cached(base, "gaussian_noise", 3, seed=1)  # another seed: another entry
    assert not np.array_equal(other.images, fresh.images)
    assert len(list((nml_home / "features" / "corruptions").glob("*.npz"))) == 2


def test_printed_digits_are_cached_and_equal_to_a_fresh_rendering(nml_home, monkeypatch):
    from nml.data import digits

    fresh = digits.render_printed_digits(3, seed=5)
    cached = digits.printed_digits_cached(3, seed=5)
    assert np.array_equal(cached.images, fresh.images) and np.array_equal(cached.labels, fresh.labels)

    def no_render(*args, **kwargs):
        raise AssertionError("cached printed digits were rendered again")

    monkeypatch.setattr(digits, "render_printed_digits", no_render)
    again = digits.printed_digits_cached(3, seed=5)
    assert np.array_equal(again.images, fresh.images) and again.classes == fresh.classes
    with pytest.raises(AssertionError, match="rendered again"):
        digits.printed_digits_cached(3, seed=6)  # another seed: another entry
    assert len(list((nml_home / "features" / "printed-digits").glob("*.npz"))) == 1
