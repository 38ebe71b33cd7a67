"""``nml bench turn``: TURN against the two-network LP baselines (DivideMix-LP, UNICON-LP) at
equal epochs, wall-clock seconds measured in one run on the same data (the paper's Table 1 claim
that TURN is cheaper). The data and encoders are chapter 03's bench inputs."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from nml.chapters.ch03_nmtune.bench import bench_data, bench_encoder
from nml.chapters.ch03_nmtune.run import extraction_pass

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
    from nml.estimators.noisy_labels import TURN, EncoderViews, create_method
    from nml.estimators.noisy_labels.full import crop_augment
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
            t_online = _timed_fit(create_method(method, **two), EncoderViews(encoder, images, augment), labels)
            rows.append({"backbone": name, "method": method, "way": "encoder on every augmented batch (paper)",
                         "seconds": t_online})
            t_cached = _timed_fit(create_method(method, **two), bank, labels)
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
