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

from nml.chapters.nmtune import extraction_pass, measure_runtime, nmtune_method
from nml.params import TunerConfig

BENCH_ENCODERS = ("nml_resnet4_half", "efficientnet-lite0", "opennsfw")
GOAL_TUNE_OVER_EXTRACT = 0.2
GOAL_SPEEDUP = 10.0


def bench_data(n: int, image_size: int = 32, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` MNIST-5k digits (stratified, seeded) as 1-channel [-1, 1] tensors, the splits' convention."""
    from nml.data.digits import load_digit_domain
    from nml.preprocess import gray_tensor

    digits = load_digit_domain("mnist-5k")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(digits.labels))[: min(n, len(digits.labels))])
    return gray_tensor(digits.images[idx], image_size), digits.labels[idx].astype(np.int64)


def bench_encoder(name: str, image_size: int | None = None):
    """An encoder for the benchmark: the cpu profile's backbone (random weights: timing only) or a packaged one."""
    if name == "nml_resnet4_half":
        from nml.models import create_backbone

        torch.manual_seed(0)
        return create_backbone(name, in_chans=1).eval()
    from nml.encoders import create_encoder

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


# --------------------------------------------------------------------------------------------
# nml bench turn

# pre-trained backbones only: on random weights DivideMix / UNICON select no labeled sample, skip
# their semi-supervised epochs, and their times would mean nothing
TURN_BENCH_BACKBONES = ("efficientnet-lite0",)


def _timed_fit(estimator, *args, **kwargs) -> float:
    start = time.perf_counter()
    estimator.fit(*args, **kwargs)
    return time.perf_counter() - start


def bench_turn(backbones: list[str], *, n: int = 1000, epochs: int = 5, epochs_lp: int = 20, views: int = 4,
               image_size: int = 48, seed: int = 0) -> pd.DataFrame:
    """Wall-clock seconds of TURN and of DivideMix-LP / UNICON-LP on the same data, measured now.

    At equal epochs: TURN runs ``epochs_lp`` LP epochs on features it extracts once, then
    ``epochs`` FFT epochs (each with its cleansing pass); DivideMix-LP and UNICON-LP run
    ``epochs`` epochs (one of warm-up) two ways — the TURN paper's (the frozen encoder re-run on
    every augmented batch, ``EncoderViews``) and nml's (a bank of ``views`` feature views
    extracted once, its extraction time included). One row per (backbone, method, way).
    """
    from nml.finetune import TURN, EncoderViews, make_method
    from nml.finetune.full import crop_augment
    from nml.noise import uniform_noise

    images, y = bench_data(n, seed=seed)
    labels = uniform_noise(y, 0.6, seed=seed).labels
    augment = crop_augment(2, False)
    rows = []
    for name in backbones:
        encoder = bench_encoder(name, image_size)
        two = {"epochs": epochs, "warmup_epochs": 1, "batch_size": 64, "seed": seed}
        t_turn = _timed_fit(TURN(backbone=encoder, epochs_lp=epochs_lp, epochs_fft=epochs, flip=False, crop_pad=2, seed=seed),
                            images, labels)
        rows.append({"backbone": name, "method": "turn", "way": f"{epochs_lp} LP epochs on cached features + {epochs} FFT epochs",
                     "seconds": t_turn})
        start = time.perf_counter()
        bank = np.stack([extraction_pass(encoder, images)]
                        + [extraction_pass(encoder, augment(images, torch.Generator().manual_seed(k))) for k in range(1, views)], axis=1)
        t_bank = time.perf_counter() - start
        for method in ("dividemix-lp", "unicon-lp"):
            t_online = _timed_fit(make_method(method, **two), EncoderViews(encoder, images, augment), labels)
            rows.append({"backbone": name, "method": method, "way": "encoder on every augmented batch (paper)",
                         "seconds": t_online})
            t_cached = _timed_fit(make_method(method, **two), bank, labels)
            rows.append({"backbone": name, "method": method, "way": f"cached bank of {views} views (nml)",
                         "seconds": t_bank + t_cached})
    table = pd.DataFrame(rows)
    turn_s = table[table["method"] == "turn"].set_index("backbone")["seconds"]
    table["turn_over_this"] = table["backbone"].map(turn_s) / table["seconds"]
    return table


def format_turn_report(table: pd.DataFrame) -> str:
    lines = []
    for backbone, d in table.groupby("backbone", sort=False):
        lines.append(f"{backbone}")
        for r in d.itertuples():
            ratio = "" if r.method == "turn" else f"   TURN / this = {r.turn_over_this:5.2f}x"
            lines.append(f"  {r.method:13s} {r.seconds:8.2f} s  {r.way}{ratio}")
    lines.append("paper (Fig. 3a, CIFAR-100, 90% noise, GPUs): TURN takes 0.12x of UNICON's time")
    return "\n".join(lines)
