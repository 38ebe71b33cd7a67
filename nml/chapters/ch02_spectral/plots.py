"""Chapter 02's figures (Fig. 1 and Fig. 3 analogs, spectra, per-task scores, example images):
each takes a tidy frame and returns a matplotlib Figure."""

from __future__ import annotations

# No backend is forced here: JupyterLab shows figures inline, papermill and headless runs fall back
# to Agg on their own, and the tests set MPLBACKEND=Agg (tests/conftest.py).
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def _pct_axis(ax: plt.Axes) -> None:
    ax.set_xlabel("pre-training noise γ (%)")


def id_ood_vs_gamma(results: pd.DataFrame) -> plt.Figure:
    """Fig. 1 analog: average ID and OOD probe accuracy vs γ, seed spread as error bars."""
    per_seed = results.groupby(["track", "kind", "gamma", "seed"])["acc"].mean().reset_index()
    per_seed["gamma_pct"] = 100 * per_seed["gamma"]
    per_seed["acc_pct"] = 100 * per_seed["acc"]
    tracks = sorted(per_seed["track"].unique())
    fig, axes = plt.subplots(len(tracks), 2, figsize=(10, 3.6 * len(tracks)), squeeze=False)
    for i, track in enumerate(tracks):
        for j, kind in enumerate(["ID", "OOD"]):
            d = per_seed[(per_seed["track"] == track) & (per_seed["kind"] == kind)]
            ax = axes[i, j]
            sns.lineplot(d, x="gamma_pct", y="acc_pct", marker="o", errorbar="sd", err_style="bars", ax=ax,
                         color="C0" if kind == "ID" else "C3")
            ax.scatter(d["gamma_pct"], d["acc_pct"], color="0.4", s=12, zorder=3, label="seeds")
            ax.set(title=f"{track}: average {kind} accuracy", ylabel="LP accuracy (%)")
            _pct_axis(ax)
    fig.tight_layout()
    return fig


def spectral_scatter(results: pd.DataFrame) -> plt.Figure:
    """Fig. 3 analog: SVE vs ID accuracy and LSVR vs OOD accuracy, one point per task, γ and seed."""
    r = results.assign(**{"γ (%)": (100 * results["gamma"]).round().astype(int), "acc_pct": 100 * results["acc"],
                          "test domain": results["test_domain"]})
    tracks = sorted(r["track"].unique())
    fig, axes = plt.subplots(len(tracks), 2, figsize=(14, 4.2 * len(tracks)), squeeze=False)
    for i, track in enumerate(tracks):
        d = r[r["track"] == track]
        for j, (kind, x, label) in enumerate([("ID", "sve", "SVE of ID test features"),
                                              ("OOD", "lsvr", "LSVR of OOD test features")]):
            ax = axes[i, j]
            sns.scatterplot(d[d["kind"] == kind], x=x, y="acc_pct", hue="γ (%)", style="test domain",
                            palette="viridis", ax=ax)
            ax.set(title=f"{track}: {x.upper()} vs {kind} accuracy", xlabel=label, ylabel=f"{kind} LP accuracy (%)")
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def spectra_groups(spectrum: pd.DataFrame, kind: str = "ID") -> plt.Figure:
    """Fig. 10–14 analog: normalised singular values in three index groups, one line per γ."""
    s = spectrum[spectrum["kind"] == kind]
    s = s.assign(gamma_pct=(100 * s["gamma"]).round().astype(int))
    tracks = sorted(s["track"].unique())
    groups = list(dict.fromkeys(s["group"]))
    fig, axes = plt.subplots(len(tracks), len(groups), figsize=(4.5 * len(groups), 3.6 * len(tracks)), squeeze=False)
    for i, track in enumerate(tracks):
        for j, group in enumerate(groups):
            d = s[(s["track"] == track) & (s["group"] == group)]
            mean = d.groupby(["gamma_pct", "index"])["sigma_normalized"].mean().reset_index()
            sns.lineplot(mean, x="index", y="sigma_normalized", hue="gamma_pct", palette="viridis", ax=axes[i, j])
            axes[i, j].set(title=f"{track}, {kind} features: σ {group}", ylabel="σᵢ / Σσ", xlabel="index i")
            if j:
                axes[i, j].get_legend().remove()
            else:
                axes[i, j].legend(title="γ (%)", fontsize=8)
            if group.startswith("top"):
                axes[i, j].set_yscale("log")
    fig.tight_layout()
    return fig


def per_task(results: pd.DataFrame, kind: str) -> plt.Figure:
    """Fig. 6–9 analog: LP accuracy vs γ for each task (ID) or test domain (OOD)."""
    r = results[results["kind"] == kind]
    col = "task" if kind == "ID" else "test_domain"
    r = r.assign(gamma_pct=100 * r["gamma"], acc_pct=100 * r["acc"],
                 panel=r[col] if kind == "ID" else r["train_domain"] + " → " + r["test_domain"])
    panels = list(dict.fromkeys(r["panel"]))
    ncol = min(4, len(panels))
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), squeeze=False)
    for k, panel in enumerate(panels):
        ax = axes.flat[k]
        sns.lineplot(r[r["panel"] == panel], x="gamma_pct", y="acc_pct", hue="track", marker="o", errorbar="sd", ax=ax)
        ax.set(title=panel, ylabel="LP accuracy (%)")
        _pct_axis(ax)
        if k:
            ax.get_legend().remove()
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def example_images(rows: dict[str, np.ndarray], labels: dict[str, np.ndarray], n: int = 10) -> plt.Figure:
    """One row of example images per domain (images as model input in [-1, 1] or uint8)."""
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n, 1.25 * len(rows)), squeeze=False)
    for i, (name, images) in enumerate(rows.items()):
        for j in range(n):
            ax = axes[i, j]
            if j < len(images):
                img = np.asarray(images[j]).squeeze()
                # fixed grey range: autoscaling would hide exactly the contrast shifts we show
                lo, hi = (0, 255) if img.dtype == np.uint8 else (-1, 1)
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
                ax.set_title(str(labels[name][j]), fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig
