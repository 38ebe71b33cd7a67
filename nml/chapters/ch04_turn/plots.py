"""Chapter 04's figures: every function takes a tidy frame of runs and returns a Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from nml.report import figures  # noqa: F401  (sets the seaborn theme)


def _order(rows: pd.DataFrame) -> list[str]:
    from nml.chapters.ch04_turn.run import LABELS

    present = set(rows["label"])
    return [v for v in LABELS.values() if v in present]


def best_last(rows: pd.DataFrame) -> plt.Figure:
    """Table 2 analog per method, one panel per backbone × noise: best (bar: test accuracy at the
    best-validation epoch), last (dot) and the paper's best test epoch (tick: oracle, as in the
    paper); TURN's step-1 LP accuracy as a cross."""
    d = rows.assign(best_pct=100 * rows["best"], last_pct=100 * rows["last"], oracle_pct=100 * rows["best_oracle"],
                    lp_pct=100 * rows["lp_acc"])
    backbones, noises = list(dict.fromkeys(d["backbone"])), list(dict.fromkeys(d["noise"]))
    order = _order(d)
    fig, axes = plt.subplots(len(backbones), len(noises), figsize=(3.8 * len(noises), 3.6 * len(backbones)),
                             squeeze=False, sharey=True)
    for i, b in enumerate(backbones):
        for j, n in enumerate(noises):
            ax = axes[i, j]
            sub = d[(d["backbone"] == b) & (d["noise"] == n)]
            sns.barplot(sub, y="label", x="best_pct", order=order, errorbar="sd", color="#9ecae1", ax=ax)
            means = sub.groupby("label")[["last_pct", "oracle_pct", "lp_pct"]].mean().reindex(order)
            pos = np.arange(len(order))
            ax.scatter(means["last_pct"], pos, color="#08519c", zorder=3, s=14, label="last")
            ax.scatter(means["oracle_pct"], pos, color="#cb181d", marker="|", zorder=3, s=80,
                       label="best test epoch (oracle, as in the paper)")
            ax.scatter(means["lp_pct"], pos, color="#238b45", marker="x", zorder=3, s=20, label="TURN step 1 (LP)")
            ax.set(title=f"{b}\n{n}", xlabel="test accuracy (%)", ylabel="", xlim=(0, 100))
            if i == 0 and j == 0:
                from matplotlib.patches import Patch

                handles, names = ax.get_legend_handles_labels()
                ax.legend([Patch(color="#9ecae1"), *handles], ["best (at the best-validation epoch)", *names],
                          loc="lower left", fontsize=6)
    fig.tight_layout()
    return fig


def time_vs_accuracy(rows: pd.DataFrame, noise: str) -> plt.Figure:
    """Fig. 3 analog (left): training seconds vs best test accuracy, every method, at ``noise``."""
    d = rows[rows["noise"] == noise].groupby(["backbone", "label"], sort=False)[["fit_seconds", "best"]].mean().reset_index()
    backbones = list(dict.fromkeys(d["backbone"]))
    fig, axes = plt.subplots(1, len(backbones), figsize=(5.2 * len(backbones), 4), squeeze=False)
    for ax, b in zip(axes[0], backbones, strict=True):
        sub = d[d["backbone"] == b]
        sns.scatterplot(sub, x="fit_seconds", y=100 * sub["best"], hue="label", hue_order=_order(d), s=70, ax=ax,
                        legend=(b == backbones[0]))
        for r in sub.itertuples():
            ax.annotate(r.label.split(" ")[0], (r.fit_seconds, 100 * r.best), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set(xscale="log", title=f"{b}, {noise}", xlabel="training time (s, log; this machine)",
               ylabel="best test accuracy (%, best-validation epoch)")
    if len(backbones) and axes[0, 0].get_legend() is not None:
        sns.move_legend(axes[0, 0], "lower left", fontsize=7, title=None)
    fig.tight_layout()
    return fig


def sensitivity(rows: pd.DataFrame) -> plt.Figure:
    """Fig. 3 analog (right): TURN's best / last accuracy as E_LP, E_FFT or τ varies."""
    names = {"epochs_lp": "E_LP (LP epochs)", "epochs_fft": "E_FFT (FFT epochs)", "tau": "τ (GMM threshold)"}
    d = rows.melt(id_vars=["parameter", "value", "seed"], value_vars=["best", "last"], var_name="which", value_name="acc")
    d["acc_pct"] = 100 * d["acc"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (param, title) in zip(axes, names.items(), strict=True):
        sub = d[d["parameter"] == param]
        sns.lineplot(sub, x="value", y="acc_pct", hue="which", marker="o", errorbar="sd", ax=ax, legend=(param == "epochs_lp"))
        ax.set(title=title, xlabel=title.split(" ")[0], ylabel="test accuracy (%)")
    fig.tight_layout()
    return fig


def purity(runs: pd.DataFrame, detection: pd.DataFrame) -> plt.Figure:
    """Table 9 analog: size and purity of TURN's first selection vs τ; detectors' precision / recall."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    d = runs.assign(purity_pct=100 * runs["first_purity_subset"], clean_pct=100 * runs["first_purity_clean"])
    sns.lineplot(d, x="tau", y="first_n_subset", hue="noise", marker="o", errorbar="sd", ax=axes[0])
    axes[0].set(title="balanced subset size (1st cleansing)", xlabel="τ", ylabel="samples")
    sns.lineplot(d, x="tau", y="purity_pct", hue="noise", marker="o", errorbar="sd", ax=axes[1], legend=False)
    axes[1].set(title="subset purity (% correct labels)", xlabel="τ", ylabel="purity (%)")
    long = detection.melt(id_vars=["noise", "detector"], value_vars=["precision", "recall"], var_name="score")
    long["label"] = long["detector"].str.split(" ").str[0] + " " + long["score"]
    sns.barplot(long, x="noise", y="value", hue="label", errorbar="sd", ax=axes[2])
    axes[2].set(title="noisy-label detection", xlabel="", ylabel="score", ylim=(0, 1))
    sns.move_legend(axes[2], "lower left", fontsize=7, title=None)
    fig.tight_layout()
    return fig


def tsne_grid(points: pd.DataFrame) -> plt.Figure:
    """Fig. 2 analog: t-SNE panels, one row per backbone, colour = true test label."""
    backbones = list(dict.fromkeys(points["backbone"]))
    panels = list(dict.fromkeys(points["panel"]))
    fig, axes = plt.subplots(len(backbones), len(panels), figsize=(3.6 * len(panels), 3.4 * len(backbones)), squeeze=False)
    for i, b in enumerate(backbones):
        for j, p in enumerate(panels):
            ax = axes[i, j]
            sub = points[(points["backbone"] == b) & (points["panel"] == p)]
            ax.scatter(sub["x"], sub["y"], c=sub["label"], cmap="tab10", s=4, vmin=0, vmax=9)
            ax.set(title=f"{b}: {p}", xticks=[], yticks=[])
    fig.tight_layout()
    return fig


def noise_matrices(matrices: dict[str, np.ndarray], realized: dict[str, float]) -> plt.Figure:
    """The realized transition matrix (rows: clean class, columns: noisy label) of each noise setting."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.4 * len(matrices), 3.2), squeeze=False)
    for ax, (name, m) in zip(axes[0], matrices.items(), strict=True):
        sns.heatmap(m, cmap="mako", vmin=0, vmax=1, cbar=False, square=True, ax=ax)
        ax.set(title=f"{name}\n{100 * realized[name]:.1f}% labels wrong", xlabel="noisy label", ylabel="clean label")
    fig.tight_layout()
    return fig
