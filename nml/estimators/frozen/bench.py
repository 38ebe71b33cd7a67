"""``nml bench fits``: how close the tuners' training runs to this machine's matrix-multiply rate.

Measured in one process, on one CPU thread (how the chapters run their fits: one thread per worker
process), on seeded synthetic features of two shapes:

* ``cpu``: the cpu profile's chapter-03 fits — 2,975 training rows (MNIST-5k's training split),
  256-d features of the pre-trained ResNet, 10 classes;
* ``paper``: ResNet-50's 2048-d features, 1,000 training rows, 10 classes.

For LP, MLP and NMTune (the official preset: residual head 4×D wide, two views per step) at batch
64: seconds per fit alone (``fit``) and per fit when ``heads`` fits of the same recipe train as one
model (``fit_many``), the GFLOP of the matrix products a fit does (:func:`training_gflop`: forward
and backward products of head, classifier and NMTune's covariance term; the SVD and elementwise
work are not counted, so the fraction understates NMTune's work) and the achieved rate as a fraction of the
machine's fp32 GEMM rate on the same thread. Every epoch does the same work, so the rate is taken
over ``epochs`` epochs (default 3, not the chapters' 30; LP runs its 30). Beside LP: scikit-learn's
``LogisticRegression`` (lbfgs) on the same features, its time and test accuracy.

Goals (issue 13), for the MLP and NMTune heads trained as one: at least 30% of the GEMM rate at
the paper shape, at least 10% at the cpu shape. LP's arithmetic (D × 10 per row) is too small to
be rate-bound; it is reported without a goal, beside scikit-learn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from nml.estimators.frozen.base import FeatureTuner, fit_many
from nml.estimators.frozen.heads import hidden_width
from nml.estimators.frozen.linear_probe import LinearProbe
from nml.estimators.frozen.mlp import MLPTuner
from nml.estimators.frozen.nmtune import NMTUNE_PRESETS, NMTune

GOALS = {"paper": 0.30, "cpu": 0.10}
N_CLASSES = 10


@dataclass(frozen=True)
class FitShape:
    name: str
    n_train: int
    n_features: int
    n_test: int = 1000


SHAPES = {"cpu": FitShape("cpu", 2975, 256), "paper": FitShape("paper", 1000, 2048)}


def gemm_rate(size: int = 2048, repeats: int = 5) -> float:
    """fp32 GFLOP/s of a ``size``³ matrix product on the current torch threads (best of ``repeats``)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def synthetic_features(shape: FitShape, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, bank of 4 views of X_train, X_test, y_test): Gaussian classes in D dims."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=0.6, size=(N_CLASSES, shape.n_features)).astype(np.float32)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, N_CLASSES, n)
        return (centers[y] + rng.normal(size=(n, shape.n_features))).astype(np.float32), y

    x, y = draw(shape.n_train)
    x_test, y_test = draw(shape.n_test)
    bank = (x[:, None, :] + 0.1 * rng.normal(size=(shape.n_train, 4, shape.n_features))).astype(np.float32)
    return x, y, bank, x_test, y_test


LP_EPOCHS = 30  # LP always runs the chapters' 30 epochs: it is cheap, and it is compared with scikit-learn


def tuners(epochs: int) -> dict[str, Callable[[int], FeatureTuner]]:
    """The benchmarked recipes, each a factory of a tuner by seed (batch 64): LP (30 epochs), and
    MLP and NMTune with the official head and two views (``epochs`` epochs)."""
    official = {k: NMTUNE_PRESETS["official"][k] for k in ("head", "depth", "activation", "hidden_mult", "n_views")}
    return {
        "LP": lambda seed: LinearProbe(epochs=LP_EPOCHS, batch_size=64, seed=seed),
        "MLP": lambda seed: MLPTuner(**official, epochs=epochs, batch_size=64, seed=seed),
        "NMTune": lambda seed: NMTune(preset="official", epochs=epochs, batch_size=64, seed=seed),
    }


def training_gflop(tuner: FeatureTuner, n_train: int, n_features: int, n_classes: int = N_CLASSES) -> float:
    """GFLOP of the matrix products of one fit (a multiply-add counted as 2 FLOPs), every row of
    every step: each Linear layer's forward product and its weight-gradient product, the
    input-gradient product of every layer but the first (the frozen features need no gradient),
    NMTune's covariance ``zcᵀ zc`` (its forward product and the two of its gradient) and the
    product ``U diag(g) Vᵀ`` of the SVD term's gradient (the SVD itself is not counted)."""
    hp = tuner._resolved_hyper_params()
    rows = n_train * int(hp["epochs"]) * int(hp.get("n_views", 1))
    layers = [] if isinstance(tuner, LinearProbe) else _head_layers(n_features, hp)
    layers.append((n_features, n_classes))
    products = [2 * a * b for a, b in layers]
    per_row = 2 * sum(products) + sum(products[1:])
    if not isinstance(tuner, LinearProbe) and hp.get("w_covariance"):
        per_row += 3 * (2 * n_features**2)
    if not isinstance(tuner, LinearProbe) and hp.get("w_dominant_sv"):
        step_rows = int(hp["batch_size"]) * int(hp.get("n_views", 1))
        per_row += 2 * n_features * min(step_rows, n_features)
    return rows * per_row / 1e9


def _head_layers(n_features: int, hp: dict) -> list[tuple[int, int]]:
    hidden = hidden_width(n_features, hp["hidden_mult"])
    widths = [n_features] + [hidden] * (int(hp["depth"]) - 1) + [n_features]
    return list(zip(widths[:-1], widths[1:], strict=True))


def bench_fits(shapes: list[str] | None = None, *, heads: int = 8, epochs: int = 3, seed: int = 0) -> pd.DataFrame:
    """One row per (shape, tuner, mode) with seconds per fit, GFLOP, GFLOP/s and the fraction of
    the one-thread GEMM rate; plus a LogisticRegression row per shape. See the module doc."""
    from sklearn.linear_model import LogisticRegression

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rate = gemm_rate()
        rows = []
        for name in shapes or list(SHAPES):
            shape = SHAPES[name]
            x, y, bank, x_test, y_test = synthetic_features(shape, seed)
            for label, make in tuners(epochs).items():
                gflop = training_gflop(make(0), shape.n_train, shape.n_features)
                make(0).fit(x[:256], y[:256], views=bank[:256])  # warm-up (allocator, kernels)
                start = time.perf_counter()
                alone = make(seed).fit(x, y, views=bank)
                t_alone = time.perf_counter() - start
                start = time.perf_counter()
                fit_many([make(seed + k) for k in range(heads)], [x] * heads, [y] * heads, [bank] * heads)
                t_many = (time.perf_counter() - start) / heads
                acc = float(np.mean(alone.predict(x_test) == y_test))
                for mode, seconds in (("alone", t_alone), (f"{heads} as one", t_many)):
                    goal = GOALS[name] if label != "LP" and mode != "alone" else np.nan
                    rows.append({"goal": goal, "shape": name, "n_train": shape.n_train, "n_features": shape.n_features,
                                 "method": label, "mode": mode,
                                 "epochs": int(alone._resolved_hyper_params()["epochs"]), "seconds_per_fit": seconds,
                                 "gflop_per_fit": gflop, "gflops": gflop / seconds, "gemm_gflops": rate,
                                 "fraction_of_gemm": gflop / seconds / rate, "test_acc": acc})
            start = time.perf_counter()
            lr = LogisticRegression(max_iter=1000).fit(x, y)
            seconds = time.perf_counter() - start
            rows.append({"goal": np.nan, "shape": name, "n_train": shape.n_train, "n_features": shape.n_features,
                         "method": "scikit-learn LogisticRegression", "mode": "alone", "epochs": np.nan,
                         "seconds_per_fit": seconds, "gflop_per_fit": np.nan, "gflops": np.nan, "gemm_gflops": rate,
                         "fraction_of_gemm": np.nan, "test_acc": float(lr.score(x_test, y_test))})
        return pd.DataFrame(rows)
    finally:
        torch.set_num_threads(threads)


def format_fits_report(table: pd.DataFrame) -> str:
    """The table as text, with the goals of the MLP and NMTune heads trained as one."""
    rate = float(table["gemm_gflops"].iloc[0])
    lines = [f"fp32 GEMM rate on one thread: {rate:.1f} GFLOP/s (2048^3 product, best of 5)"]
    for shape, part in table.groupby("shape", sort=False):
        first = part.iloc[0]
        epochs = int(part.loc[part.method == "NMTune", "epochs"].iloc[0])
        lines.append(f"\n{shape} shape: {first.n_train} rows x {first.n_features}-d features, 10 classes, batch 64, "
                     f"MLP / NMTune {epochs} epochs, LP {LP_EPOCHS}")
        for r in part.itertuples():
            if np.isnan(r.gflops):
                lines.append(f"  {r.method:32s} {r.seconds_per_fit:8.3f} s per fit   test acc {r.test_acc:.3f}")
                continue
            verdict = ""
            if not np.isnan(r.goal):
                verdict = f"  (goal >= {r.goal:.0%}: {'meets' if r.fraction_of_gemm >= r.goal else 'MISSES'})"
            lines.append(f"  {r.method + ' ' + r.mode:32s} {r.seconds_per_fit:8.3f} s per fit  {r.gflops:7.1f} GFLOP/s "
                         f"= {r.fraction_of_gemm:6.1%} of GEMM{verdict}   test acc {r.test_acc:.3f}")
        lp = part[(part.method == "LP") & (part["mode"] != "alone")]
        sk = part[part.method.str.startswith("scikit")]
        if len(lp) and len(sk):
            lines.append(f"  LP ({lp['mode'].iloc[0]}, per fit) / LogisticRegression time: "
                         f"{float(lp.seconds_per_fit.iloc[0]) / float(sk.seconds_per_fit.iloc[0]):.2f}x")
    return "\n".join(lines)
