"""Chapter 05's figures: every function takes a tidy frame and returns a Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from nml.chapters.ch03_nmtune.run import METHOD_ORDER
from nml.report import figures  # noqa: F401  (sets the seaborn theme)


def per_test_scores(rows: pd.DataFrame) -> plt.Figure:
    """LP / MLP / NMTune per test set (ID test splits, then OOD sets; validation rows are left out),
    one panel per encoder; bars = mean over seeds of the task metric, error bars = std over seeds."""
    rows = rows[rows["kind"].isin(["ID", "OOD"])]
    d = rows.assign(score_pct=100 * rows["score"], label=rows["kind"] + ": " + rows["test"])
    encoders = list(d["encoder"].unique())
    order = list(dict.fromkeys(d.sort_values("kind", kind="stable")["label"]))
    hue = [m for m in METHOD_ORDER if m in set(d["method"])]
    fig, axes = plt.subplots(1, len(encoders), figsize=(max(5.0, 1.1 * len(order)) * len(encoders) / 1.4, 3.8),
                             squeeze=False, sharey=True)
    for ax, enc in zip(axes[0], encoders, strict=True):
        sns.barplot(data=d[d["encoder"] == enc], x="label", y="score_pct", hue="method", order=order, hue_order=hue,
                    errorbar="sd", ax=ax)
        ax.set_title(enc)
        ax.set_xlabel("")
        ax.set_ylabel("score (task metric, %)")
        ax.tick_params(axis="x", rotation=30)
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
        ax.get_legend().remove()
    handles, labels = axes[0, -1].get_legend_handles_labels()
    fig.legend(handles, labels, title="method", loc="upper left", bbox_to_anchor=(1.0, 0.95))
    fig.tight_layout()
    return fig


def feature_spectra(spectra: pd.DataFrame) -> plt.Figure:
    """SVE and LSVR of each encoder's frozen features on each task split."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, col, title in ((axes[0], "sve", "SVE of frozen features"), (axes[1], "lsvr", "LSVR of frozen features")):
        sns.barplot(data=spectra, x="split", y=col, hue="encoder", ax=ax)
        ax.set_title(title)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
    fig.tight_layout()
    return fig


def tuned_spectra(rows: pd.DataFrame) -> plt.Figure:
    """Fig. 5 analog (language part): SVE and LSVR of what each method's classifier reads (LP: the
    frozen features; MLP / NMTune: the head's output) on the ID test splits and the OOD sets, mean
    over tasks and seeds, one bar per encoder and method."""
    d = rows[rows["kind"].isin(["ID", "OOD"])].assign(label=lambda x: x["encoder"] + ", " + x["kind"])
    hue = [m for m in METHOD_ORDER if m in set(d["method"])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, col, title in ((axes[0], "sve", "SVE (authors' variant)"), (axes[1], "lsvr", "LSVR (authors' variant)")):
        sns.barplot(data=d, x="label", y=col, hue="method", hue_order=hue, errorbar="sd", ax=ax)
        ax.set_title(title)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    return fig
