import numpy as np
import pytest
import torch

from nml.models import features as feat
from nml.models.backbones import create_backbone


@pytest.fixture
def backbone():
    torch.manual_seed(0)
    return create_backbone("nml_resnet4_half", num_classes=0, in_chans=1).eval()


def test_cached_features_are_reused(tmp_path, backbone, caplog):
    x = torch.randn(20, 1, 16, 16)
    caplog.set_level("DEBUG", logger="nml.models.features")  # per-file cache lines are details
    a = feat.extract_features(backbone, x, data_id="toy", split="test", transform="t", cache_dir=tmp_path)
    assert a.shape == (20, 256) and a.dtype == np.float32
    assert "cached features" in caplog.text
    b = feat.extract_features(backbone, x, data_id="toy", split="test", transform="t", cache_dir=tmp_path)
    assert "reusing features" in caplog.text
    assert np.array_equal(a, b)
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_key_changes_with_weights_data_split_and_transform(backbone):
    base = feat.feature_key(backbone, "d", "s", "t")
    assert base != feat.feature_key(backbone, "d2", "s", "t")
    assert base != feat.feature_key(backbone, "d", "s2", "t")
    assert base != feat.feature_key(backbone, "d", "s", "t2")
    with torch.no_grad():
        next(backbone.parameters()).add_(1e-3)
    assert base != feat.feature_key(backbone, "d", "s", "t")


def test_interrupted_extraction_keeps_finished_shards(tmp_path, backbone, monkeypatch):
    x = torch.randn(30, 1, 16, 16)
    expected = feat.extract_features(backbone, x, data_id="ref", split="s", transform="t", cache_dir=tmp_path / "ref")

    calls = {"n": 0}
    real_take = feat.take

    def dying_take(images, idx):
        calls["n"] += 1
        if calls["n"] == 3:  # the third shard of 10
            raise KeyboardInterrupt
        return real_take(images, idx)

    monkeypatch.setattr(feat, "take", dying_take)
    with pytest.raises(KeyboardInterrupt):
        feat.extract_features(backbone, x, data_id="ref", split="s", transform="t", cache_dir=tmp_path / "run",
                              shard_size=10, batch_size=10)
    shards = sorted((tmp_path / "run").glob("*.shard*.npz"))
    assert len(shards) == 2

    computed = []
    monkeypatch.setattr(feat, "take", lambda images, idx: computed.append(len(idx)) or real_take(images, idx))
    got = feat.extract_features(backbone, x, data_id="ref", split="s", transform="t", cache_dir=tmp_path / "run",
                                shard_size=10, batch_size=10)
    assert computed == [10]  # only the unfinished shard was recomputed
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert not list((tmp_path / "run").glob("*.shard*.npz"))


def test_torn_cache_file_is_recomputed(tmp_path, backbone):
    x = torch.randn(5, 1, 16, 16)
    a = feat.extract_features(backbone, x, data_id="d", split="s", transform="t", cache_dir=tmp_path)
    path = next(tmp_path.glob("*.npz"))
    path.write_bytes(b"PK\x03\x04 torn")
    b = feat.extract_features(backbone, x, data_id="d", split="s", transform="t", cache_dir=tmp_path)
    assert np.array_equal(a, b)


def test_array_id_is_content_addressed():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert feat.array_id(a) == feat.array_id(a.copy())
    assert feat.array_id(a) != feat.array_id(a.astype(np.int64))
    b = a.copy()
    b[0, 0] = 99
    assert feat.array_id(a) != feat.array_id(b)


def test_array_id_of_a_read_only_array_is_hashed_once(monkeypatch):
    a = feat.freeze(np.arange(1000, dtype=np.float32).reshape(100, 10))
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0, 0] = 1.0  # nothing can change what the remembered hash describes
    first = feat.array_id(a)
    assert first == feat.array_id(a.copy())  # the same content hash as a writeable copy
    calls = []
    real = feat.hashlib.sha256
    monkeypatch.setattr(feat.hashlib, "sha256", lambda *args: calls.append(1) or real(*args))
    assert feat.array_id(a) == first and not calls  # remembered, not re-hashed
    b = a.copy()
    feat.array_id(b)
    feat.array_id(b)
    assert len(calls) == 2  # a writeable array is hashed every time
    view = np.arange(10.0)[2:]
    view.flags.writeable = False  # read-only view of a writeable base: not immutable
    feat.array_id(view)
    feat.array_id(view)
    assert len(calls) == 4


def test_extracted_features_are_read_only(tmp_path, backbone):
    x = torch.randn(8, 1, 16, 16)
    a = feat.extract_features(backbone, x, data_id="ro", split="s", transform="t", cache_dir=tmp_path)
    b = feat.extract_features(backbone, x, data_id="ro", split="s", transform="t", cache_dir=tmp_path)
    assert not a.flags.writeable and not b.flags.writeable
    assert feat.cached_features(backbone, data_id="ro", split="s", transform="t", cache_dir=tmp_path) is not None
    assert feat.cached_features(backbone, data_id="other", split="s", transform="t", cache_dir=tmp_path) is None


def test_view_bank_is_cached_augmented_and_reproducible(nml_home):
    from functools import partial

    from nml._infra.training import random_resized_crop
    from nml.models.features import view_bank

    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5)).eval()
    images = torch.rand(30, 1, 8, 8)
    augment = partial(random_resized_crop, scale=(0.5, 1.0), flip=True)
    kw = {"n_views": 3, "augment": augment, "augment_id": "rrc0.5-1+flip", "data_id": "toy", "split": "train",
          "transform": "none", "batch_size": 16}
    bank = view_bank(encoder, images, **kw)
    assert bank.shape == (30, 3, 5)
    assert not np.allclose(bank[:, 0], bank[:, 1])  # the views differ
    with torch.no_grad():
        plain = encoder(images).numpy()
    assert not np.allclose(bank[:, 0], plain)  # and are augmented
    assert np.array_equal(view_bank(encoder, images, **kw), bank)  # same seeds, same views (from the cache)

    def must_not_augment(batch, generator):
        raise AssertionError("a cached view bank was augmented again")

    # a warm run reads the cached views without augmenting the images again
    assert np.array_equal(view_bank(encoder, images, **{**kw, "augment": must_not_augment}), bank)
    assert not bank.flags.writeable
    with pytest.raises(ValueError, match="at least 2 views"):
        view_bank(encoder, images, **{**kw, "n_views": 1})


def test_random_resized_crop_identity_flip_and_seed():
    from nml._infra.training import random_resized_crop

    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(5, 1, 1, 1)
    same = random_resized_crop(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(same, x, atol=1e-5)  # the whole image, unflipped
    flipped = random_resized_crop(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=True)
    assert all(torch.allclose(f, x[0]) or torch.allclose(f, x[0].flip(-1)) for f in flipped)
    a = random_resized_crop(x, torch.Generator().manual_seed(1), scale=(0.5, 0.9))
    b = random_resized_crop(x, torch.Generator().manual_seed(1), scale=(0.5, 0.9))
    assert torch.equal(a, b) and a.shape == x.shape
    with pytest.raises(ValueError, match="scale must satisfy"):
        random_resized_crop(x, torch.Generator(), scale=(0.9, 0.5))
