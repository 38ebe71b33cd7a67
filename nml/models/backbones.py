"""Backbones by name, the timm way: :func:`register_backbone`, :func:`create_backbone`,
:func:`list_backbones`; ``BACKBONE_REGISTRY.check(name)`` validates a name without building.

Small ResNets for the offline profiles are registered into timm's own registry too, so every
backbone — ours or a published one (``resnet50``, any timm name) — is made by
``timm.create_model(name)``.
"""

from __future__ import annotations

import functools
import hashlib
import weakref
from collections.abc import Callable
from typing import TypeVar

import timm
import torch
from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet

from nml._infra.registry import Registry

#: Every backbone by name: ours (registered below), then any timm model name (a family).
BACKBONE_REGISTRY: Registry[torch.nn.Module] = Registry("backbone")

ModelFn = TypeVar("ModelFn", bound=Callable[..., torch.nn.Module])


def _timm_backbone(name: str, *, num_classes: int = 0, in_chans: int = 3) -> torch.nn.Module:
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)


def register_backbone(fn: ModelFn) -> ModelFn:
    """Decorator: register a timm model function under its own name, in timm and here.

    Like timm's ``register_model`` (the name is the function's), so ``timm.create_model`` builds
    it as it builds any published model; the description is the docstring's first line.
    """
    register_model(fn)
    BACKBONE_REGISTRY.register(fn.__name__, functools.partial(_timm_backbone, fn.__name__),
                               description=(fn.__doc__ or fn.__name__).strip().splitlines()[0])
    return fn


@BACKBONE_REGISTRY.register_family("", pattern="<timm model name>",
                                   description="any timm model, randomly initialised (see timm.list_models())")
def _any_timm_model(name: str) -> Callable[..., torch.nn.Module] | None:
    return functools.partial(_timm_backbone, name) if timm.is_model(name) else None


def _four_block_resnet(width: int, **kwargs) -> ResNet:
    # One BasicBlock per stage ([1, 1, 1, 1]), as in SPEC §5: the smallest ResNet that keeps
    # the four-stage shape of the paper's ResNet-50, trainable on 2 CPU cores.
    channels = tuple(width * 2**i for i in range(4))
    # timm's factory passes hub-related keywords (pretrained_cfg, cache_dir…); ours has no
    # published weights, so only the architecture keywords are kept.
    arch = {k: v for k, v in kwargs.items() if k in _ARCH_KWARGS}
    return ResNet(BasicBlock, [1, 1, 1, 1], channels=channels, stem_width=width, **arch)


_ARCH_KWARGS = {"num_classes", "in_chans", "global_pool", "drop_rate", "drop_path_rate"}


@register_backbone
def nml_resnet4(pretrained: bool = False, **kwargs) -> ResNet:
    """Four-block ResNet, widths 64-128-256-512 (512-d features)."""
    return _four_block_resnet(64, **kwargs)


@register_backbone
def nml_resnet4_half(pretrained: bool = False, **kwargs) -> ResNet:
    """Four-block ResNet at half width, 32-64-128-256 (256-d features); ~3x faster on CPU."""
    return _four_block_resnet(32, **kwargs)


class _GroupNorm(torch.nn.GroupNorm):
    """GroupNorm with BatchNorm's constructor (timm's ResNet builds ``norm_layer(channels)``)."""

    def __init__(self, num_channels: int, **kwargs):
        super().__init__(min(8, num_channels), num_channels, **kwargs)


@register_backbone
def nml_resnet4_half_gn(pretrained: bool = False, **kwargs) -> ResNet:
    """Four-block half-width ResNet with GroupNorm: no batch statistics, so any number of processes
    trains it as one does (SyncBatchNorm needs GPUs)."""
    arch = {k: v for k, v in kwargs.items() if k in _ARCH_KWARGS}
    return ResNet(BasicBlock, [1, 1, 1, 1], channels=(32, 64, 128, 256), stem_width=32, norm_layer=_GroupNorm, **arch)


def create_backbone(name: str, *, num_classes: int = 0, in_chans: int = 3) -> torch.nn.Module:
    """Create a backbone by name, randomly initialised (pre-training starts from scratch).

    ``num_classes=0`` returns the pooled-feature extractor (timm convention). An unknown name
    raises ``KeyError`` naming the valid choices.
    """
    return BACKBONE_REGISTRY.create(name, num_classes=num_classes, in_chans=in_chans)


def list_backbones(pattern: str | None = None) -> list[str]:
    """Names of nml's own backbones (fnmatch ``pattern``); any timm model name is valid too."""
    return BACKBONE_REGISTRY.names(pattern)


def feature_dim(model: torch.nn.Module) -> int:
    """Width of the pooled features the backbone hands to its classifier."""
    return int(model.num_features)


# state_dict_hash per module, valid while its state is unchanged: a warm run asks for the identity
# of the same checkpoints a thousand times. Parameters are tracked by torch's version counter (bumped
# by every in-place write through autograd's view of the tensor: an optimiser step, load_state_dict,
# nn.init); buffers by their bytes, because BatchNorm updates its running statistics in train mode
# without bumping it (and they are small).
_HASHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _state_signature(model: torch.nn.Module) -> tuple:
    params = tuple((k, id(p), p.data_ptr(), p._version) for k, p in model.named_parameters())
    named = list(model.named_buffers())
    # every buffer's values in one float64 vector, hashed at once (exact for BatchNorm's counters)
    values = torch.cat([b.detach().reshape(-1).double().cpu() for _, b in named]) if named else torch.zeros(0)
    layout = tuple((k, tuple(b.shape), str(b.dtype)) for k, b in named)
    return params, layout, hashlib.sha256(values.numpy().tobytes()).hexdigest()


def state_dict_hash(model: torch.nn.Module) -> str:
    """sha256 of the weights (names, shapes, dtypes and bytes): the identity of a checkpoint.

    Remembered per module until one of its tensors is replaced or written in place."""
    signature = _state_signature(model)
    hit = _HASHES.get(model)
    if hit is not None and hit[0] == signature:
        return hit[1]
    digest = _weights_digest(model)
    _HASHES[model] = (signature, digest)
    return digest


def _weights_digest(model: torch.nn.Module) -> str:
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
