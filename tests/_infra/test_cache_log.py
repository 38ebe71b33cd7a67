"""Every on-disk cache records the entries it reads or computes (the provenance of saved results)."""

import torch

from nml._infra.cache import cache_log_position, cache_uses_since, record_cache_use
from nml._infra.jobs import run_cached


def _square(x):
    return x * x


def test_uses_since_a_mark_and_computed_wins_over_reused():
    mark = cache_log_position()
    record_cache_use("a/1", reused=False)
    record_cache_use("a/1", reused=True)
    record_cache_use("a/2", reused=True)
    assert cache_uses_since(mark) == {"a/1": False, "a/2": True}
    assert cache_uses_since(cache_log_position()) == {}


def test_job_map_records_computed_then_reused(nml_home):
    mark = cache_log_position()
    assert run_cached([2, 3], str, _square, folder="toy") == [4, 9]
    assert cache_uses_since(mark) == {"toy/2": False, "toy/3": False}
    mark = cache_log_position()
    assert run_cached([2, 3], str, _square, folder="toy") == [4, 9]
    assert cache_uses_since(mark) == {"toy/2": True, "toy/3": True}


def test_feature_cache_records_its_key(tmp_path):
    from nml.models.features import extract_features, feature_key

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.randn(5, 1, 4, 4)
    key = f"features/{feature_key(net, 'toy', 'test', 't')}"
    for reused in (False, True):
        mark = cache_log_position()
        extract_features(net, x, data_id="toy", split="test", transform="t", cache_dir=tmp_path)
        assert cache_uses_since(mark) == {key: reused}
