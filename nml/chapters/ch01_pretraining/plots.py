"""Chapter 01's figures (training curves, the realised noise transition): each takes a tidy
frame or array and returns a matplotlib Figure."""

from __future__ import annotations

# No backend is forced here: JupyterLab shows figures inline, papermill and headless runs fall back
# to Agg on their own, and the tests set MPLBACKEND=Agg (tests/conftest.py).
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def training_curves(history: pd.DataFrame) -> plt.Figure:
    """Per track: clean test accuracy and training loss per epoch, one line per γ (mean over seeds)."""
    tracks = sorted(history["track"].unique())
    fig, axes = plt.subplots(2, len(tracks), figsize=(5.5 * len(tracks), 7), squeeze=False)
    h = history.assign(gamma_pct=(100 * history["gamma"]).round().astype(int))
    for j, track in enumerate(tracks):
        d = h[h["track"] == track]
        sns.lineplot(d, x="epoch", y="test_acc", hue="gamma_pct", palette="viridis", ax=axes[0, j], errorbar="sd")
        sns.lineplot(d, x="epoch", y="train_loss", hue="gamma_pct", palette="viridis", ax=axes[1, j], errorbar="sd", legend=False)
        label = "clean test accuracy" + (" (zero-shot)" if track == "contrastive" else "")
        axes[0, j].set(title=f"{track} pre-training", ylabel=label)
        axes[1, j].set(ylabel="training loss (on noisy targets)")
        axes[0, j].legend(title="γ (%)")
    fig.tight_layout()
    return fig


def transition_matrix(matrix: np.ndarray, classes: list[str], title: str) -> plt.Figure:
    """Heatmap of a realized noise transition matrix (rows: clean class, columns: noisy label)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    sns.heatmap(matrix, annot=True, fmt=".2f", cmap="mako", xticklabels=classes, yticklabels=classes,
                annot_kws={"size": 6}, ax=ax, vmin=0, vmax=1)
    ax.set(title=title, xlabel="noisy label", ylabel="clean label")
    fig.tight_layout()
    return fig
