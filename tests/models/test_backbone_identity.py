"""The weights' hash is remembered per module, and forgotten whenever the state changes."""

import pytest
import torch

from nml.models import backbones
from nml.models.backbones import create_backbone, state_dict_hash


@pytest.fixture
def model():
    torch.manual_seed(0)
    return create_backbone("nml_resnet4_half", num_classes=0, in_chans=1)


def _fresh(model: torch.nn.Module) -> str:
    return backbones._weights_digest(model)


def test_the_hash_is_remembered_while_nothing_changes(model, monkeypatch):
    first = state_dict_hash(model)
    assert first == _fresh(model)
    calls = []
    real = backbones._weights_digest
    monkeypatch.setattr(backbones, "_weights_digest", lambda m: calls.append(1) or real(m))
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, 1, 16, 16))  # eval forward: no state change
    assert state_dict_hash(model) == first and not calls


def test_batchnorm_statistics_in_train_mode_change_the_hash(model):
    # BatchNorm updates its running statistics without bumping the tensors' version counters
    first = state_dict_hash(model)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 1, 16, 16))
    assert state_dict_hash(model) != first
    assert state_dict_hash(model) == _fresh(model)


def test_optimiser_steps_and_loading_weights_change_the_hash(model):
    first = state_dict_hash(model)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.eval()
    model(torch.randn(2, 1, 16, 16)).sum().backward()
    opt.step()
    stepped = state_dict_hash(model)
    assert stepped != first and stepped == _fresh(model)
    model.load_state_dict(saved)
    assert state_dict_hash(model) == first
    model.conv1.weight.data = torch.zeros_like(model.conv1.weight)  # a new tensor behind the parameter
    assert state_dict_hash(model) != first
    assert state_dict_hash(model) == _fresh(model)
