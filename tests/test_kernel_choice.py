"""`nml run` starts the `nml` kernel when `make setup` registered it, else this Python's `python3`."""

import logging

import pytest
from jupyter_client import kernelspec

from nml.runner import choose_kernel


@pytest.fixture
def kernels(monkeypatch):
    found: dict[str, str] = {}
    monkeypatch.setattr(kernelspec.KernelSpecManager, "find_kernel_specs", lambda self: dict(found))
    return found


def test_the_registered_nml_kernel_is_used(kernels):
    kernels.update(nml="/venv/share/jupyter/kernels/nml", python3="/venv/share/jupyter/kernels/python3")
    assert choose_kernel() == "nml"


def test_without_make_setup_the_current_python_kernel_is_used_with_one_log_line(kernels, caplog):
    kernels.update(python3="/venv/share/jupyter/kernels/python3")
    with caplog.at_level(logging.INFO, logger="nml.runner"):
        assert choose_kernel() == "python3"
    assert len(caplog.records) == 1 and "make setup" in caplog.records[0].getMessage()


def test_an_explicit_kernel_wins(kernels):
    kernels.update(nml="/venv/share/jupyter/kernels/nml")
    assert choose_kernel("other") == "other"
