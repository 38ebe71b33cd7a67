import numpy as np
import pytest
import torch

from nml import features as feat
from nml.models import create_backbone


@pytest.fixture
def backbone():
    torch.manual_seed(0)
    return create_backbone("nml_resnet4_half", num_classes=0, in_chans=1).eval()


def test_cached_features_are_reused(tmp_path, backbone, caplog):
    x = torch.randn(20, 1, 16, 16)
    caplog.set_level("INFO", logger="nml.features")
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
