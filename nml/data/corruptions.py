"""Common corruptions (Hendrycks & Dietterich) of grayscale ``ImageSet``s, via ``imagecorruptions``.

How a gray image is corrupted: it is replicated to 3 channels (uint8), passed to the
corruption function of ``imagecorruptions`` (the imaug build pinned in pyproject), and turned
back to gray. Most corruptions leave the three channels equal; the colour overlays (``frost``,
``spatter``) are reduced with ITU-R 601 luma (PIL ``"L"``); the four pixel-independent noises
(gaussian, shot, impulse, speckle) keep channel 0, so the noise level is the documented one
(luma of three independent noises would shrink its std to ~0.67x).

Image size: ``imagecorruptions.corrupt`` refuses images under 32×32, but its corruption functions
all run correctly (same-shape output, no error) on 8, 16, 24, 28 and 32 px images (measured for
all 19 corruptions and severities 1–5), so images are corrupted at their own size. Pass
``min_size=32`` to upscale smaller images (bilinear) to 32 first and back afterwards, the
package's documented regime.

Speed (2-core CPU, 200 Fashion-MNIST images at 28 and at 32 px, severities 1/3/5, per image):
< 0.2 ms for the noises, pixelate, contrast, jpeg_compression, gaussian_blur, defocus_blur,
glass_blur (numba-compiled in this build) and spatter; 0.3–0.6 ms for motion_blur, snow, fog,
brightness, elastic_transform and saturate; ~1 ms for zoom_blur; 3.5 ms for ``frost`` (up to
6 ms cold: it reads one of six frost photos from disk at every call). ``saturate`` is (nearly)
a no-op on gray images. ``CORRUPTIONS_FAST`` is the 15 common corruptions minus ``frost``.

Determinism: ``corrupt(..., seed=s)`` gives the same images for the same ``s``. The library
draws from numpy's *global* RNG (and takes a ``seed`` argument in ``glass_blur`` and
``impulse_noise``), so each image gets its own seed drawn from ``default_rng(seed)``; the
global state is set per image and restored when the call ends (not thread-safe: do not corrupt
from several threads at once).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from nml._infra.progress import tqdm
from nml.data.image_set import ImageSet

__all__ = [
    "COMMON_CORRUPTIONS",
    "CORRUPTIONS",
    "CORRUPTIONS_FAST",
    "corrupt",
    "corruption_names",
]

COMMON_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
# the four "validation" corruptions of imagecorruptions
CORRUPTIONS: tuple[str, ...] = COMMON_CORRUPTIONS + ("speckle_noise", "gaussian_blur", "spatter", "saturate")
# measured < 5 ms per image at 28 and 32 px and visibly changing a gray image (see module doc)
CORRUPTIONS_FAST: tuple[str, ...] = tuple(c for c in COMMON_CORRUPTIONS if c != "frost")

_PER_CHANNEL_NOISE = frozenset({"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"})
_TAKES_SEED = frozenset({"glass_blur", "impulse_noise"})


def corruption_names() -> tuple[str, ...]:
    """Every corruption ``corrupt`` accepts (the 15 common ones, then 4 validation ones)."""
    return CORRUPTIONS


def _check(corruption: str, severity: int) -> None:
    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}: expected one of {list(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ValueError(f"corruption severity must be an integer 1..5, got {severity!r}")


def _corrupt_one(image: np.ndarray, corruption: str, severity: int, seed: int) -> np.ndarray:
    from imagecorruptions import corruption_dict

    rgb = Image.fromarray(np.repeat(image[:, :, None], 3, axis=2))
    kwargs = {"seed": seed} if corruption in _TAKES_SEED else {}
    np.random.seed(seed)  # noqa: NPY002 - imagecorruptions draws from the global RNG
    out = np.uint8(np.clip(corruption_dict[corruption](rgb, severity, **kwargs), 0, 255))
    if out.ndim == 2:
        return out
    if corruption in _PER_CHANNEL_NOISE:
        return np.ascontiguousarray(out[:, :, 0])
    return np.asarray(Image.fromarray(out[:, :, :3]).convert("L"))


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def corrupt(
    image_set: ImageSet,
    corruption: str,
    severity: int,
    *,
    seed: int,
    min_size: int = 0,
    progress: bool | None = None,
) -> ImageSet:
    """A copy of ``image_set`` with ``corruption`` at ``severity`` (1–5) applied to every image.

    Same ``seed``, same output; numpy's global random state is left as it was. Images smaller
    than ``min_size`` are upscaled to it for the corruption and downscaled back. ``progress``
    shows a tqdm bar (default: for more than 2,000 images).
    """
    _check(corruption, severity)
    height, width = image_set.image_size
    work_size = (max(height, min_size), max(width, min_size))
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=len(image_set))
    out = np.empty_like(image_set.images)
    show = len(image_set) > 2000 if progress is None else progress
    saved = np.random.get_state()  # noqa: NPY002 - restored below
    try:
        for i in tqdm(range(len(image_set)), desc=f"{corruption}-{severity}", disable=not show, leave=False):
            image = image_set.images[i]
            if work_size != (height, width):
                image = _resize(image, work_size)
            result = _corrupt_one(image, corruption, severity, int(seeds[i]))
            out[i] = result if result.shape == (height, width) else _resize(result, (height, width))
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    return ImageSet(f"{image_set.name}+{corruption}-{severity}", out, image_set.labels.copy(), image_set.classes)


# Bump when corrupt() changes what it computes: cached corrupted sets are then made again.
CORRUPTION_CODE_VERSION = 1


def corrupt_cached(image_set: ImageSet, corruption: str, severity: int, *, seed: int, min_size: int = 0) -> ImageSet:
    """:func:`corrupt`, cached on disk under ``<NML_HOME>/features/corruptions``.

    The key holds the images' and labels' content, the corruption, severity, seed, ``min_size``
    and the code version; the file is written atomically, so a warm run reads the corrupted set
    instead of re-applying a per-image corruption (seconds per set) on every run.
    """
    import hashlib

    from nml._infra.cache import atomic_save_npz, record_cache_use, stable_hash
    from nml._infra.paths import features_dir

    _check(corruption, severity)
    content = hashlib.sha256(np.ascontiguousarray(image_set.images).tobytes())
    content.update(np.ascontiguousarray(image_set.labels).tobytes())
    key = stable_hash({"images": [content.hexdigest(), list(image_set.images.shape)], "corruption": corruption,
                       "severity": int(severity), "seed": int(seed), "min_size": int(min_size),
                       "code": CORRUPTION_CODE_VERSION}, length=24)
    path = features_dir() / "corruptions" / f"{key}.npz"
    name = f"{image_set.name}+{corruption}-{severity}"
    if path.exists():
        try:
            with np.load(path) as f:
                images = f["images"]
            record_cache_use(f"corruptions/{key}", reused=True)
            return ImageSet(name, images, image_set.labels.copy(), image_set.classes)
        except Exception:  # torn or foreign file: make it again
            pass
    out = corrupt(image_set, corruption, severity, seed=seed, min_size=min_size)
    atomic_save_npz(path, {"images": out.images})
    record_cache_use(f"corruptions/{key}", reused=False)
    return out
