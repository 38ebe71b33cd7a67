"""Claims T1–T6 of the TURN paper, judged from chapter 04's runs on the claims engine.

Input: chapter 04's tidy rows — one per run with ``backbone``, ``noise``, ``method`` (or
``label`` for Table 4's variants), ``seed``, the accuracies ``best`` (test accuracy at the
fine-tuning epoch with the best *validation* accuracy), ``last`` and ``lp_acc``, and the test
predictions of those epochs (``pred_best``, ``pred_last``) with the test set's ``test_id``.

Every effect is computed per seed (seed ``s`` of every method saw the same noisy labels and the
same validation split: one paired unit), averaged over seeds and judged by its interval
(:mod:`nml.report.verdict`); accuracies carry the test set's sampling error through the shared
bootstrap resamples of :mod:`nml.report.scores`, so differences are paired over test samples too.
Effects are signed so that positive is what the paper claims.

* **T1 / T1-last** — per (backbone, noise): TURN minus the strongest baseline, the baseline with
  the best mean over seeds (of ``best`` for T1, of ``last`` for T1-last), pts.
* **T2** — at the severe setting: LP minus FFT *last* accuracy, averaged over the losses both
  have (CE, GCE, ELR), pts.
* **T3** — at the mild setting: FFT minus LP ``best`` accuracy, averaged over the losses, pts.
* **T4** — ``1 − TURN seconds / rival seconds`` per seed (the share of the rival's training time
  TURN saves), against DivideMix-LP and UNICON-LP run the paper's way (encoder re-run on every
  augmented batch) and timed alone; no test samples (B = 0). A comparison that was not made that
  way is ``not testable``, never a verdict.
* **T5** — per Table 4 variant: full TURN minus the variant, on fine-tuning-phase ``best``, pts.
* **T6** — Spearman ρ between τ and the purity of TURN's first class-balanced subset, per
  seed; no test samples (B = 0).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from nml.report.findings import paper_number
from nml.report.reference import paper_table
from nml.report.scores import Scores, correlation_by, interval
from nml.report.verdict import COLUMNS, claim_row, format_interval, not_testable

CLAIMS = {
    "T1": "TURN beats every baseline (best accuracy: test at the best-validation epoch)",
    "T1-last": "TURN beats every baseline (last accuracy)",
    "T2": "under severe noise, LP is steadier than FFT (higher last accuracy, same loss)",
    "T3": "under mild noise, FFT beats LP (best accuracy, same loss)",
    "T4": "TURN trains faster than the two-network LP methods run the paper's way",
    "T5": "each component counts: full TURN beats it without the component (Table 4, fine-tuning-phase accuracy)",
    "T6": "a higher GMM threshold gives a purer selected subset (Table 9)",
}
LOSSES = ("ce", "gce", "elr")
RIVALS = {"dividemix-lp": "DivideMix (LP)", "unicon-lp": "UNICON (LP)"}
ENCODER_WAY = "encoder every batch"
FULL_TURN = "LP yes, cleansing every"


def accuracy_scores(rows: pd.DataFrame, truth: Mapping[str, np.ndarray], which: str = "best",
                    keys: tuple[str, ...] = ("study", "backbone", "noise", "method", "seed")) -> Scores:
    """The test accuracy of each run's ``pred_<which>`` epoch, with its test-set resamples."""
    keys = [k for k in keys if k in rows]
    d = rows[[*keys, "test_id", f"pred_{which}"]].rename(columns={f"pred_{which}": "pred"})
    d = d[d["pred"].map(lambda p: p is not None)].reset_index(drop=True)
    return Scores.from_predictions(d, truth, "accuracy")


def _per_seed(a: Scores, b: Scores) -> np.ndarray:
    """``a − b`` per shared seed (both keyed by seed alone), stacked (seeds × (1 + B))."""
    ka, kb = a.keyed(["seed"]), b.keyed(["seed"])
    common = sorted(s for s in ka if s in kb)
    return np.stack([ka[s] - kb[s] for s in common]) if common else np.zeros((0, a.reps.shape[1]))


def _ci(est) -> str:
    return format_interval(est.effect, est.ci_low, est.ci_high)


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def claim_t1(acc: Scores, which: str) -> list[dict]:
    """T1 (``which="best"``) or T1-last (``"last"``): one row per (backbone, noise) of Table 2."""
    claim = "T1" if which == "best" else "T1-last"
    out = []
    table = acc.table
    for (b, noise), _ in table.groupby(["backbone", "noise"], sort=False):
        scope = f"{b}, {noise}"
        d = acc.where(backbone=b, noise=noise)
        means = d.mean_by(["method"])
        mean = dict(zip(means.table["method"], means.value, strict=True))
        baselines = {m: v for m, v in mean.items() if m != "turn"}
        if "turn" not in mean or not baselines:
            out.append(not_testable(claim, CLAIMS[claim], scope, "needs TURN and at least one baseline"))
            continue
        rival = max(baselines, key=baselines.get)
        est = interval(_per_seed(d.where(method="turn").mean_by(["seed"]), d.where(method=rival).mean_by(["seed"]))).scaled(100)
        evidence = (f"{which} acc: TURN {_pct(mean['turn'])} vs the strongest baseline {rival} {_pct(mean[rival])} "
                    f"(mean over seeds); TURN minus {rival} {_ci(est)} pts "
                    f"({est.n_seeds} seeds)")
        out.append(claim_row(claim, CLAIMS[claim], scope, est, evidence=evidence))
    return out


def _lp_minus_fft(acc: Scores) -> tuple[np.ndarray, list[str], dict[str, float]]:
    """Per seed: mean over losses of (LP − FFT); the losses used; the mean difference per loss."""
    per_loss, used, shown = [], [], {}
    for loss in LOSSES:
        lp, fft = acc.where(method=f"{loss}-lp"), acc.where(method=f"{loss}-fft")
        if lp.table.empty or fft.table.empty:
            continue
        diff = _per_seed(lp.mean_by(["seed"]), fft.mean_by(["seed"]))
        if len(diff):
            per_loss.append(diff)
            used.append(loss)
            shown[loss] = float(diff[:, 0].mean())
    if not per_loss:
        return np.zeros((0, acc.reps.shape[1])), used, shown
    n = min(len(p) for p in per_loss)
    return np.mean([p[:n] for p in per_loss], axis=0), used, shown


def claim_t2_t3(best: Scores, last: Scores, severe: str, mild: str | None) -> list[dict]:
    """T2 at ``severe`` (LP − FFT last) and T3 at ``mild`` (FFT − LP best), per backbone."""
    out = []
    for b in dict.fromkeys(best.table["backbone"]):
        scope = f"{b}, {severe}"
        d = last.where(backbone=b, noise=severe)
        per_seed, used, shown = _lp_minus_fft(d)
        if not used:
            out.append(not_testable("T2", CLAIMS["T2"], scope, f"needs LP and FFT runs of one loss at {severe}"))
        else:
            est = interval(per_seed).scaled(100)
            evidence = ("LP last minus FFT last (pts): " + ", ".join(f"{k.upper()} {100 * v:+.2f}" for k, v in shown.items())
                        + f"; mean {_ci(est)} ({est.n_seeds} seeds)")
            out.append(claim_row("T2", CLAIMS["T2"], scope, est, evidence=evidence))
        if mild is None or mild not in set(best.table.loc[best.table["backbone"] == b, "noise"]):
            out.append(not_testable("T3", CLAIMS["T3"], b, "needs a mild noise setting (turn.mild_noise)"))
            continue
        per_seed, used, shown = _lp_minus_fft(best.where(backbone=b, noise=mild))
        if not used:
            out.append(not_testable("T3", CLAIMS["T3"], f"{b}, {mild}", f"needs LP and FFT runs of one loss at {mild}"))
            continue
        est = interval(per_seed).scaled(100).negated()
        evidence = ("FFT best minus LP best (pts): " + ", ".join(f"{k.upper()} {-100 * v:+.2f}" for k, v in shown.items())
                    + f"; mean {_ci(est)} ({est.n_seeds} seeds)")
        out.append(claim_row("T3", CLAIMS["T3"], f"{b}, {mild}", est, evidence=evidence))
    return out


def claim_t4(timing: pd.DataFrame | None) -> list[dict]:
    """T4 from the timing study: one row per rival (DivideMix-LP, UNICON-LP)."""
    if timing is None or timing.empty:
        return [not_testable("T4", CLAIMS["T4"], "-", "no timing study ran (turn.timing): the Table 2 runs time the LP "
                             "baselines on cached feature views and two jobs at a time, which is not the paper's way")]
    out = []
    for (b, noise), d in timing.groupby(["backbone", "noise"], sort=False):
        turn = d[d["method"] == "turn"].set_index("seed")["fit_seconds"]
        for rival, name in RIVALS.items():
            scope = f"{b}, {noise}, vs {name}"
            r = d[d["method"] == rival]
            if r.empty or turn.empty:
                out.append(not_testable("T4", CLAIMS["T4"], scope, f"needs TURN and {name} in the timing study"))
                continue
            unequal = []
            if not (r["way"] == ENCODER_WAY).all():
                unequal.append(f"{name} read cached feature views instead of re-running the encoder on every augmented batch")
            if not (d["exclusive"].astype(bool)).all():
                unequal.append("the methods were not timed alone (jobs shared the cores)")
            if unequal:
                out.append(not_testable("T4", CLAIMS["T4"], scope, "unequal comparison: " + "; ".join(unequal)))
                continue
            secs = r.set_index("seed")["fit_seconds"]
            seeds = sorted(set(turn.index) & set(secs.index))
            ratio = np.array([turn[s] / secs[s] for s in seeds])
            est = interval((1.0 - ratio)[:, None])
            epochs = int(r["epochs"].iloc[0]) if "epochs" in r else -1
            evidence = (f"TURN {turn[seeds].mean():.1f} s vs {name} {secs[seeds].mean():.1f} s ({epochs} epochs, encoder re-run "
                        f"on every augmented batch; each fit timed alone, evaluation excluded): TURN takes "
                        f"{ratio.mean():.2f}x of its time; share saved {_ci(est)} "
                        f"({est.n_seeds} seeds; paper: {_paper_time_ratio():.2f}x of UNICON)")
            out.append(claim_row("T4", CLAIMS["T4"], scope, est, unit="share of the rival's training time saved",
                                 evidence=evidence))
    return out


def claim_t5(acc: Scores) -> list[dict]:
    """T5: full TURN minus each Table 4 variant (``label``), per (backbone, noise)."""
    out = []
    for (b, noise), _ in acc.table.groupby(["backbone", "noise"], sort=False):
        d = acc.where(backbone=b, noise=noise)
        labels = list(dict.fromkeys(d.table["label"]))
        if FULL_TURN not in labels or len(labels) < 2:
            out.append(not_testable("T5", CLAIMS["T5"], f"{b}, {noise}", "needs the full TURN row and another"))
            continue
        full = d.where(label=FULL_TURN).mean_by(["seed"])
        for variant in labels:
            if variant == FULL_TURN:
                continue
            est = interval(_per_seed(full, d.where(label=variant).mean_by(["seed"]))).scaled(100)
            evidence = (f"full TURN minus '{variant}' (best acc, FFT epochs only): "
                        f"{_ci(est)} pts ({est.n_seeds} seeds)")
            out.append(claim_row("T5", CLAIMS["T5"], f"{b}, {noise}, vs {variant}", est, evidence=evidence))
    return out


def claim_t6(purity: pd.DataFrame) -> list[dict]:
    """T6: Spearman ρ(τ, first-subset purity) per seed, one row per noise setting."""
    out = []
    values = Scores.from_values(purity[["noise", "seed", "tau", "first_purity_subset"]].reset_index(drop=True),
                                "first_purity_subset")
    for noise in dict.fromkeys(purity["noise"]):
        d = values.where(noise=noise)
        if d.table["tau"].nunique() < 3:
            out.append(not_testable("T6", CLAIMS["T6"], noise, "needs >= 3 thresholds"))
            continue
        r = correlation_by(d, "tau", ["seed"], method="spearman")
        est = interval(r)
        by_tau = d.mean_by(["tau"])
        evidence = ("purity of the first balanced subset: " + ", ".join(
            f"{100 * v:.1f}% at tau={t:g}" for t, v in zip(by_tau.table["tau"], by_tau.value, strict=True))
            + f"; Spearman rho {_ci(est)} ({est.n_seeds} seeds)")
        out.append(claim_row("T6", CLAIMS["T6"], noise, est, unit="Spearman rho", evidence=evidence))
    return out


def turn_claims(runs: pd.DataFrame, truth: Mapping[str, np.ndarray], severe: str, mild: str | None,
                components: pd.DataFrame | None = None, purity: pd.DataFrame | None = None,
                timing: pd.DataFrame | None = None) -> pd.DataFrame:
    """The closing claims table of chapter 04 (columns :data:`nml.report.verdict.COLUMNS`).

    ``runs``: Table 2 rows (``study`` "table2", and "mild" for the mild setting); ``truth``:
    ``{test_id: true test labels}``; ``severe`` / ``mild``: the noise labels of T2 / T3.
    """
    both = runs[runs["study"].isin(["table2", "mild"])]
    best, last = accuracy_scores(both, truth, "best"), accuracy_scores(both, truth, "last")
    rows = claim_t1(best.where(study="table2"), "best") + claim_t1(last.where(study="table2"), "last")
    rows += claim_t2_t3(best, last, severe, mild)
    rows += claim_t4(timing)
    if components is not None and len(components):
        rows += claim_t5(accuracy_scores(components, truth, "best", keys=("backbone", "noise", "label", "seed")))
    if purity is not None and len(purity):
        rows += claim_t6(purity)
    return pd.DataFrame(rows, columns=list(COLUMNS))


# ---- the paper's side of each claim, for the Findings ------------------------------------------
_PAPER_KIND = {"uniform": "symmetric", "asymmetric": "asymmetric", "instance": "instance"}
"""Our noise kinds as the paper names them: its "symmetric" noise re-draws a label uniformly (our
``uniform``); our ``symmetric`` (flip to another class) is not in its tables."""
_TABLE4_CLEANSING = {"every": "Multiple", "none": "None", "once": "Once"}


def _paper_setting(scope: str) -> tuple[str, float] | None:
    """The paper's (noise type, ratio) of the first noise label in ``scope`` (``"b, uniform 0.9, vs X"``)."""
    for part in scope.split(", "):
        words = part.split()
        if len(words) == 2 and words[0] in _PAPER_KIND:
            try:
                return _PAPER_KIND[words[0]], float(words[1])
            except ValueError:
                return None
    return None


def _table2_at(setting: tuple[str, float] | None) -> pd.DataFrame:
    t2 = paper_table("turn_table2_cifar100")
    if setting is None:
        return t2.iloc[0:0]
    return t2[(t2["noise_type"] == setting[0]) & np.isclose(t2["noise_ratio"], setting[1])]


def _setting_text(setting: tuple[str, float]) -> str:
    return f"{setting[0]} {setting[1]:g}"


def _paper_t1(scope: str, which: str) -> str:
    setting = _paper_setting(scope)
    t2 = _table2_at(setting)
    if t2.empty:
        return "no run at this noise setting in Table 2"
    gaps = []
    for _, d in t2.groupby("architecture"):
        turn = d.loc[d["method"] == "TURN", which]
        baselines = d.loc[d["method"] != "TURN", which]
        if len(turn) and len(baselines):
            gaps.append(float(turn.iloc[0] - baselines.max()))
    return paper_number(float(np.mean(gaps)), "pts", f"Table 2, {_setting_text(setting)}: TURN minus the strongest "
                        f"baseline, mean of {len(gaps)} models")


def _paper_lp_vs_fft(scope: str, which: str, sign: float) -> str:
    """``sign`` × (LP − FFT) of ``which`` accuracy, mean over the losses and models of Table 2."""
    setting = _paper_setting(scope)
    t2 = _table2_at(setting)
    t2 = t2[t2["method"].str.lower().isin(LOSSES)]
    wide = t2.pivot_table(index=["architecture", "method"], columns="tuning", values=which)
    if wide.empty or not {"LP", "FFT"} <= set(wide.columns):
        return "no run at this noise setting in Table 2"
    diff = sign * (wide["LP"] - wide["FFT"]).dropna()
    what = "LP minus FFT" if sign > 0 else "FFT minus LP"
    return paper_number(float(diff.mean()), "pts", f"Table 2, {_setting_text(setting)}: {what} {which} accuracy, "
                        f"mean of {diff.index.get_level_values('method').nunique()} losses x "
                        f"{diff.index.get_level_values('architecture').nunique()} models")


def _paper_t5(scope: str) -> str:
    variant = scope.rsplit(", vs ", 1)[-1]  # "LP no, cleansing every"
    words = variant.replace(",", "").split()
    if len(words) != 4 or words[0] != "LP" or words[2] != "cleansing" or words[3] not in _TABLE4_CLEANSING:
        return "no such row in Table 4"
    t4 = paper_table("turn_table4_components")
    t4["cleansing"] = t4["cleansing"].fillna("None")  # read_csv takes the word None for a missing value
    lp = t4["lp_step"].str.startswith("yes")
    full = t4[lp & (t4["cleansing"] == "Multiple")].set_index("architecture")["acc"]
    row = t4[(lp == (words[1] == "yes")) & (t4["cleansing"] == _TABLE4_CLEANSING[words[3]])].set_index("architecture")["acc"]
    diff = (full - row).dropna()
    if diff.empty:
        return "no such row in Table 4"
    setting = t4.iloc[0]
    return paper_number(float(diff.mean()), "pts", f"Table 4, {setting['noise_type']} {setting['noise_ratio']:g}: "
                        f"full TURN minus this variant, mean of {len(diff)} models")


def _paper_t6(scope: str) -> str:
    setting = _paper_setting(scope)
    t9 = paper_table("turn_table9_cleansing")
    if setting is not None:
        t9 = t9[(t9["noise_type"] == setting[0]) & np.isclose(t9["noise_ratio"], setting[1])]
    if setting is None or t9["gmm_tau"].nunique() < 3:
        return "no run at this noise setting in Table 9"
    rho = t9["gmm_tau"].rank().corr(t9["purity_pct"].rank())
    return paper_number(float(rho), "Spearman rho", f"Table 9, {_setting_text(setting)}: tau vs purity over "
                        f"{len(t9)} thresholds")


def paper_numbers(claims: pd.DataFrame) -> pd.Series:
    """The paper's side of each claims row, for the Findings (:func:`nml.report.findings.findings`),
    computed from the TURN paper's transcribed tables at the row's noise setting, signed as the
    claim's effect:

    * **T1 / T1-last** — Table 2: TURN minus the strongest baseline (best / last accuracy), per
      model, averaged over its models;
    * **T2 / T3** — Table 2: LP minus FFT last accuracy / FFT minus LP best accuracy, averaged over
      the losses (CE, GCE, ELR) and models;
    * **T5** — Table 4 (symmetric 0.9 only): full TURN minus the row's variant, mean of its models;
    * **T6** — Table 9: Spearman rho between the threshold and the subset's purity;
    * **T4** — stated in the text on Fig. 3a (``turn_fig3a_time``): 1 − TURN's time / UNICON's.

    Our ``uniform`` noise is the paper's "symmetric"; a setting the paper's table lacks gives the
    table's name and no number.
    """
    def one(claim: str, scope: str) -> str:
        if claim in ("T1", "T1-last"):
            return _paper_t1(scope, "best" if claim == "T1" else "last")
        if claim == "T2":
            return _paper_lp_vs_fft(scope, "last", 1.0)
        if claim == "T3":
            return _paper_lp_vs_fft(scope, "best", -1.0)
        if claim == "T5":
            return _paper_t5(scope)
        if claim == "T6":
            return _paper_t6(scope)
        if claim == "T4":
            return f"{1.0 - _paper_time_ratio():+.2f} vs UNICON (text on Fig. 3a: TURN takes {_paper_time_ratio():.2f}x of its time)"
        return "not tabulated"

    return pd.Series([one(c, s) for c, s in zip(claims["claim"], claims["scope"], strict=True)], index=claims.index)


def _paper_time_ratio() -> float:
    """TURN's training time relative to UNICON's, as the paper's text states it for Fig. 3a."""
    table = paper_table("turn_fig3a_time")
    return float(table.loc[(table["method"] == "TURN") & (table["rival"] == "UNICON"), "value"].iloc[0])
