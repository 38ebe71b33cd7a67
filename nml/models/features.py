"""Feature extraction with a content-addressed on-disk cache.

The cache key is the sha256 of the backbone's weights plus the identity of the data (a content
hash or a dataset name + split), and a description of the transform. A finished entry is one
``.npz`` written atomically; extraction is written in shards as it goes, so a killed run keeps
the shards it finished and a re-run only computes the rest.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import warnings
import weakref
from pathlib import Path

import numpy as np
import torch

from nml._infra.cache import atomic_save_npz, record_cache_use, stable_hash
from nml._infra.paths import features_dir
from nml._infra.progress import tqdm
from nml._infra.runtime import Runtime
from nml._infra.training import channels_last
from nml.models.engine import image_batches
from nml.models.image_encoders import FeatureEncoder, encoder_identity
from nml.models.pretrain import take

log = logging.getLogger("nml.models.features")

# Cached features are handed out read-only (see freeze) and torch warns once per process when a
# tensor is made from a read-only array. nml's estimators only read their inputs (scikit-learn's
# common checks verify that fit leaves them untouched), so the warning says nothing here.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)


# content hashes of read-only arrays, by object: a warm run keys ~700 fits by the same few feature
# matrices, and re-hashing their bytes for every key cost most of its time. The weak reference
# proves the entry is still the same object (ids are reused after an object dies).
_FROZEN_IDS: dict[int, tuple[weakref.ref, str]] = {}


def _immutable(a: np.ndarray) -> bool:
    """No writeable array shares ``a``'s memory: ``a`` and every array it views are read-only."""
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        a = a.base
    return a is None or isinstance(a, bytes)


def freeze(a: np.ndarray) -> np.ndarray:
    """Mark ``a`` and the arrays it views read-only (in place) and return it, so that
    :func:`array_id` hashes it once. Only for arrays nothing else writes to (e.g. just loaded)."""
    b = a
    while isinstance(b, np.ndarray):
        b.flags.writeable = False
        b = b.base
    return a


def _one_array_id(a: np.ndarray | torch.Tensor) -> str:
    if isinstance(a, np.ndarray) and _immutable(a):
        hit = _FROZEN_IDS.get(id(a))
        if hit is not None and hit[0]() is a:
            return hit[1]
    arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    arr = np.ascontiguousarray(arr)
    digest = hashlib.sha256()
    digest.update(str((arr.shape, arr.dtype.str)).encode())
    digest.update(arr.tobytes())
    out = digest.hexdigest()
    if isinstance(a, np.ndarray) and _immutable(a):
        key = id(a)
        _FROZEN_IDS[key] = (weakref.ref(a, functools.partial(_forget, key)), out)
    return out


def _forget(key: int, ref: weakref.ref) -> None:
    """Drop a remembered hash when its array dies (unless the id already names a newer array)."""
    hit = _FROZEN_IDS.get(key)
    if hit is not None and hit[0] is ref:
        del _FROZEN_IDS[key]


def array_id(*arrays: np.ndarray | torch.Tensor) -> str:
    """Content hash of in-memory data (shape, dtype and bytes).

    The hash of a read-only array (see :func:`freeze`; cached features are returned read-only)
    is computed once per object and remembered while the object lives.
    """
    if len(arrays) == 1:
        return _one_array_id(arrays[0])[:24]
    digest = hashlib.sha256()  # one stream over every array's shape, dtype and bytes
    for a in arrays:
        arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        arr = np.ascontiguousarray(arr)
        digest.update(str((arr.shape, arr.dtype.str)).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()[:24]


def feature_key(backbone: torch.nn.Module | FeatureEncoder, data_id: str, split: str, transform: str) -> str:
    return stable_hash({"weights": encoder_identity(backbone), "data": data_id, "split": split, "transform": transform}, length=24)


def cached_features(backbone: torch.nn.Module | FeatureEncoder, *, data_id: str, split: str, transform: str,
                    cache_dir: Path | None = None) -> np.ndarray | None:
    """The cached features :func:`extract_features` would return for these arguments (read-only),
    or None when they are not cached (or the entry is unreadable, which is then recomputed)."""
    cache_dir = Path(cache_dir) if cache_dir else features_dir()
    key = feature_key(backbone, data_id, split, transform)
    path = cache_dir / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path) as f:
            feats = f["features"]
    except Exception as err:  # torn or foreign file: recompute, never use it
        log.warning("ignoring unreadable feature cache %s (%s)", path, err)
        return None
    log.debug("reusing features %s (%s/%s, %d x %d)", path.name, data_id[:12], split, *feats.shape)
    record_cache_use(f"features/{key}", reused=True)
    return freeze(feats)


def extract_features(
    backbone: torch.nn.Module | FeatureEncoder,
    images: torch.Tensor | torch.utils.data.Dataset,
    *,
    data_id: str,
    split: str,
    transform: str,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    shard_size: int = 8192,
    cache_dir: Path | None = None,
    desc: str | None = None,
    num_workers: int = 0,
) -> np.ndarray:
    """Pooled features (N×D float32) of ``backbone`` on ``images``, cached on disk.

    Parameters
    ----------
    backbone : a module mapping an image batch to pooled features (timm ``num_classes=0``), or
        any ``nml.models.image_encoders`` encoder (a callable with an ``identity``, e.g. an ONNX black box).
    images : an N×C×H×W tensor already transformed, or a dataset yielding ``(image, label)``.
    data_id, split, transform : the identity of the input: with the weights' hash they form the
        cache key, so new weights or new data never reuse stale features.
    num_workers : DataLoader worker processes reading a dataset on disk (a tensor is sliced).

    The entry is recorded as ``features/<key>`` (reused or computed) for the provenance of the
    results saved next (:func:`nml._infra.cache.record_cache_use`).
    """
    cache_dir = Path(cache_dir) if cache_dir else features_dir()
    key = feature_key(backbone, data_id, split, transform)
    path = cache_dir / f"{key}.npz"
    cached = cached_features(backbone, data_id=data_id, split=split, transform=transform, cache_dir=cache_dir)
    if cached is not None:
        return cached
    device = torch.device(device)
    if isinstance(backbone, torch.nn.Module):
        backbone = channels_last(backbone.to(device).eval())
    else:
        device = torch.device("cpu")  # a black box takes CPU tensors and returns its own
    n = len(images)
    shards = []
    for s, start in enumerate(range(0, n, shard_size)):
        stop = min(n, start + shard_size)
        shard_path = cache_dir / f"{key}.shard{s:05d}-{start}-{stop}.npz"
        if shard_path.exists():
            try:
                with np.load(shard_path) as f:
                    shards.append(f["features"])
                continue
            except Exception:
                log.warning("recomputing torn shard %s", shard_path.name)
        out = []
        # inference mode (no autograd bookkeeping) and channels-last batches for a module; a black box
        # (e.g. an ONNX graph) gets its CPU tensors as they are
        if isinstance(images, torch.Tensor):
            batches = (take(images, torch.arange(b, min(b + batch_size, stop))) for b in range(start, stop, batch_size))
        else:  # a dataset on disk: decoded and transformed in worker processes
            reader = Runtime(device=device, num_workers=num_workers, pin_memory=device.type == "cuda")
            batches = image_batches(images, np.arange(start, stop), batch_size, reader)
        with torch.inference_mode():
            for batch in tqdm(batches, total=-(-(stop - start) // batch_size), desc=desc or f"features {split}",
                              leave=False):
                batch = batch.to(device)
                if isinstance(backbone, torch.nn.Module):
                    batch = channels_last(batch)
                out.append(backbone(batch).float().cpu().numpy())
        feats = np.concatenate(out).astype(np.float32)
        if stop - start < n:  # only multi-shard inputs need the resumable pieces
            atomic_save_npz(shard_path, {"features": feats})
        shards.append(feats)
    feats = np.concatenate(shards) if shards else np.zeros((0, 0), np.float32)
    atomic_save_npz(path, {"features": feats})
    for shard in cache_dir.glob(f"{key}.shard*.npz"):
        shard.unlink(missing_ok=True)
    log.debug("cached features %s (%s/%s, %d x %d)", path.name, data_id[:12], split, *feats.shape)
    record_cache_use(f"features/{key}", reused=False)
    return freeze(feats)


class _AugmentedImages(torch.utils.data.Dataset):
    """View ``k`` of a dataset on disk: each item augmented with a generator seeded by (k, index)."""

    def __init__(self, images: torch.utils.data.Dataset, k: int, augment):
        self.images, self.k, self.augment = images, k, augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        gen = torch.Generator().manual_seed(self.k * 1_000_003 + int(i))
        return self.augment(take(self.images, torch.tensor([i])), gen)[0], 0


def augmented_images(images: torch.Tensor | torch.utils.data.Dataset, k: int, augment,
                     chunk: int = 1024) -> torch.Tensor | torch.utils.data.Dataset:
    """Augmented copy number ``k`` of ``images`` (``augment(batch, generator)``), reproducible:
    in-memory tensors are augmented chunk by chunk with generators seeded by (k, chunk start);
    datasets on disk item by item (seeded by (k, index))."""
    if not isinstance(images, torch.Tensor):
        return _AugmentedImages(images, k, augment)
    return torch.cat([augment(images[i:i + chunk], torch.Generator().manual_seed(k * 1_000_003 + i))
                      for i in range(0, len(images), chunk)])


def view_bank(
    backbone: torch.nn.Module | FeatureEncoder,
    images: torch.Tensor | torch.utils.data.Dataset,
    *,
    n_views: int,
    augment,
    augment_id: str,
    data_id: str,
    split: str,
    transform: str,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    desc: str | None = None,
) -> np.ndarray:
    """Features of ``n_views`` augmented copies of ``images``: an (N, n_views, D) bank, each view
    extracted once and cached like any other features (keyed by ``data_id``, the view number and
    ``augment_id``, which must describe the augmentation exactly).

    The NMTune authors re-run the frozen encoder on freshly augmented images at every step; a
    bank of a few augmented views per image, drawn from at every step, is the cached stand-in.
    """
    if n_views < 2:
        raise ValueError(f"a view bank needs at least 2 views (two are drawn per step), got {n_views}")
    keys = tuple(feature_key(backbone, stable_hash({"of": data_id, "view": k, "augment": augment_id}, length=24),
                             f"{split}/view", transform) for k in range(n_views))
    bank = _BANKS.get((str(features_dir()), keys))
    if bank is not None:  # the same object while it lives: its content hash is remembered (array_id)
        for key in keys:
            record_cache_use(f"features/{key}", reused=True)
        return bank
    views = []
    for k in range(n_views):
        view_id = stable_hash({"of": data_id, "view": k, "augment": augment_id}, length=24)
        # augment the images only when the view is not cached yet (a warm run only reads)
        cached = cached_features(backbone, data_id=view_id, split=f"{split}/view", transform=transform)
        views.append(cached if cached is not None else extract_features(
            backbone, augmented_images(images, k, augment), data_id=view_id, split=f"{split}/view",
            transform=transform, batch_size=batch_size, device=device, desc=f"{desc or split} view {k}"))
    bank = freeze(np.stack(views, axis=1))
    _BANKS[(str(features_dir()), keys)] = bank
    return bank


# view banks in use, by their views' cache keys: asked for again (another section of a chapter
# reading the same checkpoint) the bank is the same read-only object, not a new stack to hash
_BANKS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
