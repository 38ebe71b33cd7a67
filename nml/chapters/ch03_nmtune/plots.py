"""Chapter 03's figures: every function takes a tidy frame of fit results and returns a Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from nml.chapters.ch03_nmtune.run import METHOD_ORDER
from nml.report import figures  # noqa: F401  (sets the seaborn theme)


def _per_seed(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    d = rows.groupby([*keys, "seed"])[["acc", "macro_f1", "sve", "lsvr"]].mean().reset_index()
    return d.assign(acc_pct=100 * d["acc"])


def tuners_vs_gamma(rows: pd.DataFrame) -> plt.Figure:
    """Fig. 5 analog: macro-F1 (ID, OOD), SVE (ID) and LSVR (OOD) of the tuned features vs γ, per method."""
    d = _per_seed(rows, ["track", "kind", "gamma", "method"])
    d["gamma_pct"] = 100 * d["gamma"]
    panels = [("ID", "macro_f1", "ID macro-F1"), ("OOD", "macro_f1", "OOD macro-F1"),
              ("ID", "sve", "SVE of tuned ID features"), ("OOD", "lsvr", "LSVR of tuned OOD features")]
    tracks = sorted(d["track"].unique())
    fig, axes = plt.subplots(len(tracks), len(panels), figsize=(4.2 * len(panels), 3.5 * len(tracks)), squeeze=False)
    order = [m for m in METHOD_ORDER if m in set(d["method"])]
    for i, track in enumerate(tracks):
        for j, (kind, col, title) in enumerate(panels):
            ax = axes[i, j]
            sub = d[(d["track"] == track) & (d["kind"] == kind)]
            sns.lineplot(sub, x="gamma_pct", y=col, hue="method", hue_order=order, marker="o", errorbar="sd",
                         err_style="bars", ax=ax, legend=(i == 0 and j == 0))
            ax.set(title=f"{track}: {title}", xlabel="pre-training noise γ (%)", ylabel=col)
    fig.tight_layout()
    return fig


def real_models(rows: pd.DataFrame) -> plt.Figure:
    """Table 2 analog: ID and OOD accuracy per encoder and method (bars: mean, whiskers: sd over tuner seeds)."""
    d = _per_seed(rows, ["encoder", "kind", "method"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), squeeze=False)
    for j, kind in enumerate(["ID", "OOD"]):
        sns.barplot(d[d["kind"] == kind], x="encoder", y="acc_pct", hue="method",
                    hue_order=[m for m in METHOD_ORDER if m in set(d["method"])], errorbar="sd", ax=axes[0, j])
        axes[0, j].set(title=f"average {kind} accuracy", ylabel="accuracy (%)", xlabel="")
        lo = d[d["kind"] == kind]["acc_pct"].min()
        axes[0, j].set_ylim(max(0, lo - 10), None)
    fig.tight_layout()
    return fig


def ablation(rows: pd.DataFrame) -> plt.Figure:
    """Tables 15/16 analog: ID accuracy per configuration, one line per pre-training γ."""
    d = _per_seed(rows, ["study", "method", "gamma"])
    d["γ (%)"] = (100 * d["gamma"]).round().astype(int).astype(str)
    studies = sorted(d["study"].unique())
    fig, axes = plt.subplots(1, len(studies), figsize=(5.5 * len(studies), 4.2), squeeze=False)
    for j, study in enumerate(studies):
        sub = d[d["study"] == study]
        dodge = 0.4 if sub["γ (%)"].nunique() > 1 else False
        sns.pointplot(sub, y="method", x="acc_pct", hue="γ (%)", errorbar="sd", dodge=dodge, linestyle="none",
                      ax=axes[0, j])
        axes[0, j].set(title=study, xlabel="average ID accuracy (%)", ylabel="")
    fig.tight_layout()
    return fig


def noisy_downstream(rows: pd.DataFrame) -> plt.Figure:
    """Fig. 15/16 analog: ID accuracy vs downstream label noise, one line per γ, LP vs NMTune."""
    d = _per_seed(rows, ["track", "method", "downstream_noise", "gamma"])
    d["downstream noise (%)"] = 100 * d["downstream_noise"]
    d["γ (%)"] = (100 * d["gamma"]).round().astype(int).astype(str)
    methods = [m for m in METHOD_ORDER if m in set(d["method"])]
    tracks = sorted(d["track"].unique())
    fig, axes = plt.subplots(len(tracks), len(methods), figsize=(5 * len(methods), 3.8 * len(tracks)),
                             squeeze=False, sharey=True)
    for i, track in enumerate(tracks):
        for j, m in enumerate(methods):
            sub = d[(d["track"] == track) & (d["method"] == m)]
            sns.lineplot(sub, x="downstream noise (%)", y="acc_pct", hue="γ (%)", palette="viridis", marker="o",
                         errorbar="sd", ax=axes[i, j])
            axes[i, j].set(title=f"{track}: {m}", ylabel="average ID accuracy (%)")
    fig.tight_layout()
    return fig


def runtime(table: pd.DataFrame) -> plt.Figure:
    """Table 14 analog: seconds per method, cached features (extract once + tune) vs encoder per batch."""
    long = table.melt(id_vars=["encoder", "method"], value_vars=["cached_total_s", "encoder_per_batch_s"],
                      var_name="way", value_name="seconds")
    long["way"] = long["way"].map({"cached_total_s": "cached features (nml)", "encoder_per_batch_s": "encoder every batch (authors)"})
    encoders = list(dict.fromkeys(long["encoder"]))
    fig, axes = plt.subplots(1, len(encoders), figsize=(5.5 * len(encoders), 3.8), squeeze=False)
    for j, enc in enumerate(encoders):
        sns.barplot(long[long["encoder"] == enc], x="method", y="seconds", hue="way", ax=axes[0, j])
        axes[0, j].set(title=f"{enc}, {int(table['epochs'].iloc[0])} epochs", xlabel="", ylabel="wall-clock seconds")
    fig.tight_layout()
    return fig
