"""``nml bench drift``: how far numbers and verdicts move under floating-point-level changes.

Another CPU computes the same seeds with other kernels, so every feature comes out different in
its last bits, and training amplifies that. This benchmark imitates it on one machine: it
multiplies every cached feature of a chapter by ``1 + ε·N(0, 1)`` (ε = 1e-6, about ten float32
rounding steps), refits every probe / tuner with the same seeds, and reports how far the scores
moved and which claim verdicts changed (and whether any moved between *holds* and *does not hold*
rather than to or from *inconclusive*). It does not replace a run on a second machine; it shows
the size of the effect the claims' intervals must absorb.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nml.config import Params

DRIFT_CHAPTERS = ("02", "03")


def _perturb(x: np.ndarray, eps: float, rng: np.random.Generator) -> np.ndarray:
    return (x * (1.0 + eps * rng.standard_normal(x.shape))).astype(np.float32)


@dataclass
class DriftReport:
    scores: pd.DataFrame  # one row per scored unit: before, after, delta (pts)
    verdicts: pd.DataFrame  # one row per claim row: verdict before, after, changed, flipped


def _compare_claims(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    keys = ["claim", "scope"]
    both = before[[*keys, "verdict", "effect"]].merge(after[[*keys, "verdict", "effect"]], on=keys,
                                                      suffixes=("_before", "_after"))
    both["changed"] = both["verdict_before"] != both["verdict_after"]
    decisive = {"holds", "does not hold"}
    both["flipped"] = both["changed"] & both["verdict_before"].isin(decisive) & both["verdict_after"].isin(decisive)
    return both


def drift_02(params: Params, eps: float = 1e-6, seed: int = 0) -> DriftReport:
    """Chapter 02: every checkpoint's probes refitted on perturbed features."""
    from nml._infra.jobs import _single_threaded
    from nml.chapters.ch01_pretraining import run as pretraining
    from nml.chapters.ch02_spectral import run as spectral
    from nml.chapters.ch02_spectral.claims import spectral_claims

    pre = pretraining.load_pretrain_data(params)
    checkpoints = pretraining.pretrain_all(params, pre)
    data = spectral.load_downstream_data(params, pre.heldout_train_indices, validation=True)
    truth = spectral.truth_of(data)
    before, _ = spectral.evaluate_all(checkpoints, data, params)
    rng = np.random.default_rng(seed)
    rows = []
    for ck in checkpoints:
        job = spectral._probe_job(ck, data, params)
        job = dataclasses.replace(job, feats={k: _perturb(v, eps, rng) for k, v in job.feats.items()})
        r, _ = _single_threaded(spectral.probe_and_score, job)
        rows += r
    after = pd.DataFrame(rows)
    keys = ["track", "gamma", "seed", "kind", "train_domain", "test_domain"]
    scores = before[[*keys, "acc"]].merge(after[[*keys, "acc"]], on=keys, suffixes=("_before", "_after"))
    scores["delta_pts"] = 100 * (scores["acc_after"] - scores["acc_before"])
    variants = tuple(params.spectral.claims_variants)
    verdicts = _compare_claims(spectral_claims(before, truth, variants), spectral_claims(after, truth, variants))
    return DriftReport(scores, verdicts)


def drift_03(params: Params, eps: float = 1e-6, seed: int = 0) -> DriftReport:
    """Chapter 03's main grid (Fig. 5 analog): every LP / MLP / NMTune fit refitted on perturbed features."""
    from nml._infra.jobs import _single_threaded
    from nml.chapters.ch01_pretraining import run as pretraining
    from nml.chapters.ch02_spectral import run as spectral
    from nml.chapters.ch03_nmtune import run as nmtune
    from nml.chapters.ch03_nmtune.claims import tuning_claims
    from nml.chapters.fit_jobs import fit_and_score

    pre = pretraining.load_pretrain_data(params)
    checkpoints = pretraining.pretrain_all(params, pre)
    data = spectral.load_downstream_data(params, pre.heldout_train_indices, validation=True)
    truth = spectral.truth_of(data)
    before = nmtune.tune_checkpoints(checkpoints, data, params)
    task_list, methods = nmtune.tasks(params), nmtune.main_methods(params)
    rng = np.random.default_rng(seed)
    jobs = []
    for ck in nmtune.select(checkpoints, params.nmtune.checkpoints):
        feats, views = nmtune._checkpoint_inputs(ck, data, params, task_list, methods, "drift")
        feats = {k: _perturb(v, eps, rng) for k, v in feats.items()}
        views = None if views is None else {k: _perturb(v, eps, rng) for k, v in views.items()}
        jobs += nmtune.jobs_for(feats, data, task_list, methods, [ck.spec.seed], nmtune._meta(ck), views=views,
                                variant=params.spectral.spectrum_variant)
    from joblib import Parallel, delayed

    from nml._infra.progress import tqdm

    results = Parallel(n_jobs=params.nmtune.n_jobs, return_as="generator")(
        delayed(_single_threaded)(fit_and_score, j) for j in jobs)
    rows = [{**row, **job.meta, "method": job.method.label}
            for job, res in zip(jobs, tqdm(results, total=len(jobs), desc="drift refits"), strict=True) for row in res]
    after = pd.DataFrame(rows)
    after["family"] = after["task"].map(nmtune.families(params)).fillna(after["task"])
    keys = ["track", "gamma", "seed", "method", "kind", "train_domain", "test_domain"]
    scores = before[[*keys, "acc"]].merge(after[[*keys, "acc"]], on=keys, suffixes=("_before", "_after"))
    scores["delta_pts"] = 100 * (scores["acc_after"] - scores["acc_before"])
    verdicts = _compare_claims(tuning_claims(before, truth), tuning_claims(after, truth))
    return DriftReport(scores, verdicts)


def bench_drift(params: Params, chapters: list[str], eps: float = 1e-6, seed: int = 0) -> dict[str, DriftReport]:
    run = {"02": drift_02, "03": drift_03}
    return {c: run[c](params, eps, seed) for c in chapters}


def format_drift_report(reports: dict[str, DriftReport], eps: float) -> str:
    lines = [f"features x (1 + {eps:g} N(0,1)), same seeds, every fit refitted"]
    for chapter, r in reports.items():
        d = r.scores["delta_pts"].abs()
        v = r.verdicts
        lines += [
            f"chapter {chapter}: {len(d)} scores; |change| median {d.median():.2f} pts, 95th percentile "
            f"{d.quantile(0.95):.2f} pts, max {d.max():.2f} pts",
            f"  verdicts: {int(v['changed'].sum())} of {len(v)} changed, {int(v['flipped'].sum())} between holds and "
            f"does not hold",
        ]
        for row in v[v["changed"]].itertuples():
            lines.append(f"    {row.claim} [{row.scope}]: {row.verdict_before} -> {row.verdict_after}")
    return "\n".join(lines)
