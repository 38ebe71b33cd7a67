"""``nml bench arithmetic``: the floor under chapter 03's cold time, from the FLOPs its fits need.

Chapter 03 is hundreds of fits of the authors' tuning loop. Each fit's matrix products are
counted exactly (:func:`nml.estimators.frozen.bench.training_gflop`, the count ``nml bench fits``
checks against torch's FlopCounterMode) from the chapter's own tables: every distinct fit of a
section with its method, its training rows and its feature width. Divided by this machine's
fp32 GEMM rate on one thread and by the cores the chapter's jobs use, that is the least wall
time the fits can take in fp32 — however they are batched or scheduled — beside the CPU time
they were measured to take (``fit_seconds``). The table answers whether a wall-clock goal is
reachable on a grid at all before anyone tunes code for it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nml.config import Params

# section -> table of the chapter
SECTIONS = {
    "main grid (Fig. 5)": "03_results.csv",
    "noisy downstream (Figs. 15-16)": "03_noisy_downstream_rows.csv",
    "ablation (Tables 15-16)": "03_ablation_rows.csv",
    "published encoders (Table 2)": "03_table2_real_models_rows.csv",
}
# what identifies one fit across sections (a fit two sections ask for is cached once: counted once,
# in the first section that asks for it); method labels are replaced by the recipe
FIT_IDENTITY = ["encoder", "track", "gamma", "seed", "train_domain", "recipe", "tuner_seed", "downstream_noise"]


def _methods(params: Params, section: str) -> dict:
    from nml.chapters.ch03_nmtune.run import ablation_methods, main_methods

    if section.startswith("ablation"):
        return {m.label: m for m in ablation_methods(params)}
    if section.startswith("published"):
        return {m.label: m for m in main_methods(params, params.nmtune.real_models.tuner)}
    return {m.label: m for m in main_methods(params)}


def fit_arithmetic(params: Params, figures: str | Path, *, cores: int | None = None,
                   rate: float | None = None) -> pd.DataFrame:
    """One row per section of chapter 03 found in ``figures`` (its committed tables) and a total:
    distinct fits (one two sections share is counted in the first), GFLOP, measured CPU seconds, seconds at the GEMM rate, the fraction of that rate the
    fits reached, and the wall-clock floor on ``cores`` cores (default: ``nmtune.n_jobs``).

    ``rate`` is the fp32 GEMM rate of one thread in GFLOP/s (default: measured now)."""
    import torch

    from nml.estimators.frozen import create_tuner
    from nml.estimators.frozen.bench import gemm_rate, training_gflop
    from nml.models.backbones import create_backbone, feature_dim

    figures = Path(figures)
    cores = cores or params.nmtune.n_jobs
    checkpoint_dim = feature_dim(create_backbone(params.pretrain.model))  # chapter 01's checkpoints' features
    if rate is None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the chapter's jobs run one thread each
        try:
            rate = gemm_rate()
        finally:
            torch.set_num_threads(threads)
    from nml.chapters.fit_jobs import method_key

    rows, seen = [], set()
    for section, name in SECTIONS.items():
        path = figures / name
        if not path.is_file():
            continue
        table = pd.read_csv(path)
        methods = _methods(params, section)
        unknown = sorted(set(table["method"]) - set(methods))
        if unknown:
            raise ValueError(f"{path}: methods {unknown} are not in the params' chapter 03 (expected {sorted(methods)}); "
                             "were the tables made with another profile?")
        table["recipe"] = [repr(method_key(methods[m])) for m in table["method"]]
        defaults = {"encoder": "checkpoint", "track": "", "gamma": -1.0, "tuner_seed": -1, "downstream_noise": 0.0}
        for col, value in defaults.items():
            table[col] = table[col].fillna(value) if col in table.columns else value
        if "tuner_seed" in table.columns and (table["tuner_seed"] == -1).all():
            table["tuner_seed"] = table["seed"]
        fits = table.drop_duplicates(FIT_IDENTITY)
        identity = [tuple(r) for r in fits[FIT_IDENTITY].itertuples(index=False)]
        fits = fits[[i not in seen for i in identity]]
        seen.update(identity)
        width = fits["feature_dim"] if "feature_dim" in fits.columns else pd.Series(checkpoint_dim, index=fits.index)
        gflop = sum(training_gflop(create_tuner(methods[m].tuner, **dict(methods[m].kwargs)), int(n), int(d))
                    for m, n, d in zip(fits["method"], fits["n_train"], width, strict=True))
        rows.append({"section": section, "fits": len(fits), "gflop": gflop, "measured_cpu_s": float(fits["fit_seconds"].sum())})
    out = pd.DataFrame(rows)
    if out.empty:
        raise FileNotFoundError(f"no chapter 03 table in {figures} (expected one of {list(SECTIONS.values())})")
    out = pd.concat([out, pd.DataFrame([{"section": "all", "fits": out["fits"].sum(), "gflop": out["gflop"].sum(),
                                         "measured_cpu_s": out["measured_cpu_s"].sum()}])], ignore_index=True)
    out["gemm_gflops"] = rate
    out["cpu_s_at_gemm_rate"] = out["gflop"] / rate
    out["fraction_of_gemm"] = out["cpu_s_at_gemm_rate"] / out["measured_cpu_s"]
    out["cores"] = cores
    out["floor_wall_s"] = out["cpu_s_at_gemm_rate"] / cores
    return out


def format_arithmetic_report(table: pd.DataFrame) -> str:
    rate, cores = float(table["gemm_gflops"].iloc[0]), int(table["cores"].iloc[0])
    lines = [f"chapter 03's fits, counted from its tables; fp32 GEMM {rate:.1f} GFLOP/s per thread, {cores} cores",
             f"{'section':32s} {'fits':>5s} {'GFLOP':>9s} {'measured CPU-s':>15s} {'at GEMM rate':>13s} {'reached':>8s} "
             f"{'floor (wall)':>13s}"]
    for r in table.itertuples():
        lines.append(f"{r.section:32s} {r.fits:5d} {r.gflop:9.0f} {r.measured_cpu_s:15.0f} {r.cpu_s_at_gemm_rate:13.0f} "
                     f"{r.fraction_of_gemm:8.0%} {r.floor_wall_s / 60:10.1f} min")
    return "\n".join(lines)
