import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # headless; nml itself never forces a backend
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def nml_home(tmp_path, monkeypatch):
    """An empty NML_HOME for tests that exercise caching."""
    home = tmp_path / "nml_home"
    monkeypatch.setenv("NML_HOME", str(home))
    return home


@pytest.fixture
def nml_home_with_assets(tmp_path, monkeypatch):
    """An empty NML_HOME for caches that still sees the fetched offline assets (read-only use)."""
    from nml._infra.paths import assets_dir

    real_assets = assets_dir()
    home = tmp_path / "nml_home"
    home.mkdir()
    (home / "assets").symlink_to(real_assets, target_is_directory=True)
    monkeypatch.setenv("NML_HOME", str(home))
    return home
