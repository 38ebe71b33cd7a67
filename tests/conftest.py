import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def nml_home(tmp_path, monkeypatch):
    """An empty NML_HOME for tests that exercise caching."""
    home = tmp_path / "nml_home"
    monkeypatch.setenv("NML_HOME", str(home))
    return home
