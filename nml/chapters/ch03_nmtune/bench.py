"""``nml bench nmtune``: what caching features buys, measured in one run on the same data.

Two ratios per encoder, both from wall-clock times measured now:

1. NMTune's tuning cost on cached features (the preset's full schedule, e.g. 30 epochs)
   relative to one feature-extraction pass. Goal: at most 0.2×.
2. At equal epochs, the authors' way of working (the frozen encoder re-run with augmentation on
   every batch of every epoch) relative to nml's (extract once, tune on cached features).
   Goal: the cached path at least 10× faster.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from nml.chapters.ch03_nmtune.config import TunerConfig
from nml.chapters.ch03_nmtune.run import extraction_pass, measure_runtime, nmtune_method

BENCH_ENCODERS = ("nml_resnet4_half", "efficientnet-lite0", "opennsfw")
GOAL_TUNE_OVER_EXTRACT = 0.2
GOAL_SPEEDUP = 10.0


def bench_data(n: int, image_size: int = 32, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` MNIST-5k digits (stratified, seeded) as 1-channel [-1, 1] tensors, the splits' convention."""
    from nml.data.digits import load_digit_domain
    from nml.models.preprocess import gray_tensor

    digits = load_digit_domain("mnist-5k")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(digits.labels))[: min(n, len(digits.labels))])
    return gray_tensor(digits.images[idx], image_size), digits.labels[idx].astype(np.int64)


def bench_encoder(name: str, image_size: int | None = None):
    """An encoder for the benchmark: the cpu profile's backbone (random weights: timing only) or a packaged one."""
    if name == "nml_resnet4_half":
        from nml.models.backbones import create_backbone

        torch.manual_seed(0)
        return create_backbone(name, in_chans=1).eval()
    from nml.models.image_encoders import create_encoder

    return create_encoder(name, **({"image_size": image_size} if image_size else {}))


def bench_nmtune(encoders: list[str], *, n: int = 1000, online_epochs: int = 10, preset: str = "official",
                 image_size: int | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per encoder with the measured seconds and the two ratios (see the module doc)."""
    images, y = bench_data(n, seed=seed)
    method = nmtune_method(TunerConfig(preset=preset))
    rows = []
    for name in encoders:
        encoder = bench_encoder(name, image_size)
        feats = extraction_pass(encoder, images)
        start = time.perf_counter()
        extraction_pass(encoder, images)
        t_extract = time.perf_counter() - start
        tuner = method.build(seed)
        start = time.perf_counter()
        tuner.fit(feats, y)
        t_tune = time.perf_counter() - start
        equal = measure_runtime(encoder, images, y, [method], epochs=online_epochs, augment=True, seed=seed, label=name).iloc[0]
        rows.append({
            "encoder": name, "n": len(y), "feature_dim": feats.shape[1], "extract_s": t_extract,
            "nmtune_full_s": t_tune, "nmtune_epochs": tuner.resolved_params()["epochs"],
            "tune_over_extract": t_tune / t_extract, "online_epochs": online_epochs,
            "cached_total_s": equal["cached_total_s"], "encoder_per_batch_s": equal["encoder_per_batch_s"],
            "speedup_cached": equal["speedup_cached"],
        })
    return pd.DataFrame(rows)


def format_report(table: pd.DataFrame) -> str:
    lines = []
    for r in table.itertuples():
        ok1 = "meets" if r.tune_over_extract <= GOAL_TUNE_OVER_EXTRACT else "MISSES"
        ok2 = "meets" if r.speedup_cached >= GOAL_SPEEDUP else "MISSES"
        lines += [
            f"{r.encoder} ({r.n} images, {r.feature_dim}-d features)",
            f"  one extraction pass              {r.extract_s:8.2f} s",
            f"  NMTune on cached features        {r.nmtune_full_s:8.2f} s ({r.nmtune_epochs} epochs)",
            f"  ratio tuning / extraction        {r.tune_over_extract:8.3f}x  "
            f"(goal <= {GOAL_TUNE_OVER_EXTRACT}x: {ok1})",
            f"  at {r.online_epochs} epochs: cached path {r.cached_total_s:.2f} s, encoder every batch {r.encoder_per_batch_s:.2f} s",
            f"  ratio encoder-every-batch / cached {r.speedup_cached:6.1f}x  (goal >= {GOAL_SPEEDUP:g}x: {ok2})",
        ]
    return "\n".join(lines)
