"""Backbones by name, the timm way.

Small ResNets for the offline profiles are registered into timm's own registry, so every
backbone — ours or a published one (``resnet50``) — is made by ``timm.create_model(name)``.
"""

from __future__ import annotations

import hashlib

import timm
import torch
from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet


def _four_block_resnet(width: int, **kwargs) -> ResNet:
    # One BasicBlock per stage ([1, 1, 1, 1]), as in SPEC §5: the smallest ResNet that keeps
    # the four-stage shape of the paper's ResNet-50, trainable on 2 CPU cores.
    channels = tuple(width * 2**i for i in range(4))
    # timm's factory passes hub-related keywords (pretrained_cfg, cache_dir…); ours has no
    # published weights, so only the architecture keywords are kept.
    arch = {k: v for k, v in kwargs.items() if k in _ARCH_KWARGS}
    return ResNet(BasicBlock, [1, 1, 1, 1], channels=channels, stem_width=width, **arch)


_ARCH_KWARGS = {"num_classes", "in_chans", "global_pool", "drop_rate", "drop_path_rate"}


@register_model
def nml_resnet4(pretrained: bool = False, **kwargs) -> ResNet:
    """Four-block ResNet, widths 64-128-256-512 (512-d features)."""
    return _four_block_resnet(64, **kwargs)


@register_model
def nml_resnet4_half(pretrained: bool = False, **kwargs) -> ResNet:
    """Four-block ResNet at half width, 32-64-128-256 (256-d features); ~3x faster on CPU."""
    return _four_block_resnet(32, **kwargs)


OFFLINE_MODELS = ("nml_resnet4", "nml_resnet4_half")


def check_model_name(name: str) -> str:
    """Raise ``KeyError`` naming the valid choices when ``name`` is not a known backbone."""
    if name in OFFLINE_MODELS or timm.is_model(name):
        return name
    raise KeyError(
        f"unknown model {name!r}: expected one of {list(OFFLINE_MODELS)} or a timm model name "
        "(see timm.list_models())"
    )


def create_backbone(name: str, *, num_classes: int = 0, in_chans: int = 3) -> torch.nn.Module:
    """Create a backbone by name, randomly initialised (pre-training starts from scratch).

    ``num_classes=0`` returns the pooled-feature extractor (timm convention).
    """
    check_model_name(name)
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)


def feature_dim(model: torch.nn.Module) -> int:
    """Width of the pooled features the backbone hands to its classifier."""
    return int(model.num_features)


def state_dict_hash(model: torch.nn.Module) -> str:
    """sha256 of the weights (names, shapes, dtypes and bytes): the identity of a checkpoint."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str((tuple(t.shape), str(t.dtype))).encode())
        digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return digest.hexdigest()


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no GPU; use device: auto or cpu")
    return torch.device(device)
