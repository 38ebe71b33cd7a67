"""Editing params for a new noise ratio (README, "Try a new noise ratio"): copy a profile, add a
γ to the supervised track, run notebooks 01 and 02 again. Only the new γ's checkpoints are trained,
only their probes are fitted, and the results table and the Fig. 1 analog gain the new point.

Notebooks 01 and 02 are what ``nml run --params FILE --only 01,02`` executes; their computation is
``pretrain_all`` and ``evaluate_all``, called here in-process so that spies can count every training
and every probe fit. The caches live in a temporary ``NML_HOME`` whose files are symlinks to the
real cache (a warm cache makes the first pass a read; a cold one fills the temporary copy only), so
the new γ is new on every run of this test and nothing is written into the real cache.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from nml._infra.paths import nml_home, project_root
from nml.chapters.ch01_pretraining import run as pretraining
from nml.chapters.ch02_spectral import plots
from nml.chapters.ch02_spectral import run as spectral
from nml.config import load_params

NEW_GAMMA = 0.4


def _mirror(src: Path, dst: Path) -> None:
    """``dst`` as a tree of symlinks to the files of ``src``: reads see the real cache, writes
    (atomic: a temporary file then ``os.replace``) replace the link, never the real file."""
    dst.mkdir(parents=True, exist_ok=True)
    if not src.is_dir():
        return
    for root, _, files in os.walk(src):
        target = dst / Path(root).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            (target / name).symlink_to(Path(root) / name)


@pytest.fixture
def warm_home(tmp_path, monkeypatch):
    real = nml_home()
    home = tmp_path / "nml_home"
    home.mkdir()
    (home / "assets").symlink_to(real / "assets", target_is_directory=True)
    for cache in ("checkpoints", "features"):
        _mirror(real / cache, home / cache)
    monkeypatch.setenv("NML_HOME", str(home))
    return home


class Spies:
    """Count trainings (an optimiser step taken) and probe fits, by checkpoint."""

    def __init__(self, monkeypatch):
        self.trained: list[tuple[str, float, int]] = []
        self.probed: list[tuple[str, float, int]] = []
        self.fits = 0
        spies = self

        def trainer(base):
            class Counted(base):
                def step(self, xb, idx):
                    spec = self.spec
                    key = (spec.track, spec.noise_ratio, spec.seed)
                    if key not in spies.trained:
                        spies.trained.append(key)
                    return super().step(xb, idx)
            return Counted

        class CountedProbe(spectral.LinearProbe):
            def _prepare(self, *args, **kwargs):  # every fit, alone or trained with others
                spies.fits += 1
                return super()._prepare(*args, **kwargs)

        probe_many_and_score = spectral.probe_many_and_score

        def counted_probe_many_and_score(jobs):
            spies.probed += [(job.base["track"], job.base["gamma"], job.base["seed"]) for job in jobs]
            return probe_many_and_score(jobs)

        monkeypatch.setattr(pretraining, "SupervisedTrainer", trainer(pretraining.SupervisedTrainer))
        monkeypatch.setattr(pretraining, "ContrastiveTrainer", trainer(pretraining.ContrastiveTrainer))
        monkeypatch.setattr(spectral, "LinearProbe", CountedProbe)
        monkeypatch.setattr(spectral, "probe_many_and_score", counted_probe_many_and_score)

    def reset(self):
        self.trained, self.probed, self.fits = [], [], 0


def _run_01_02(params):
    """What notebooks 01 and 02 compute: every checkpoint, then every probe (probes in this process)."""
    data = pretraining.load_pretrain_data(params)
    checkpoints = pretraining.pretrain_all(params, data)
    downstream = spectral.load_downstream_data(params, data.heldout_train_indices, validation=True)
    results, _ = spectral.evaluate_all(checkpoints, downstream, params)
    return checkpoints, results


@pytest.mark.slow
def test_a_new_noise_ratio_trains_and_probes_only_the_new_checkpoints(warm_home, tmp_path, monkeypatch):
    # the README's walkthrough: copy a profile, add γ = 40% to the supervised track
    raw = yaml.safe_load((project_root() / "params" / "smoke.yaml").read_text())
    assert NEW_GAMMA not in raw["pretrain"]["supervised"]["noise_ratios"]
    raw["nmtune"]["n_jobs"] = 1  # probes in this process, where the spies see them (smoke's value already)
    base_file = tmp_path / "base.yaml"
    base_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    raw["profile"] = "smoke-gamma40"
    raw["pretrain"]["supervised"]["noise_ratios"] = [*raw["pretrain"]["supervised"]["noise_ratios"], NEW_GAMMA]
    new_file = tmp_path / "smoke-gamma40.yaml"
    new_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    base, new = load_params(path=base_file), load_params(path=new_file)
    seeds = new.pretrain.supervised.seeds
    spies = Spies(monkeypatch)

    _, before = _run_01_02(base)  # warm: reads; cold: fills the temporary cache
    assert NEW_GAMMA not in set(before["gamma"])

    spies.reset()
    checkpoints, results = _run_01_02(new)
    new_keys = [("supervised", NEW_GAMMA, s) for s in seeds]
    assert len(checkpoints) == len(base.pretrain.checkpoints()) + len(seeds)
    assert spies.trained == new_keys  # only the new γ's checkpoints are trained
    assert spies.probed == new_keys   # only their probes are fitted ...
    training_domains = {o.train for o in new.spectral.ood} | set(new.spectral.id_tasks)
    assert spies.fits == len(new_keys) * len(training_domains)  # ... one per training domain each

    # the results table gains the new γ; the old rows are read back unchanged
    assert sorted(set(results["gamma"])) == sorted({*before["gamma"], NEW_GAMMA})
    old = results[results["gamma"] != NEW_GAMMA].drop(columns="pred").reset_index(drop=True)
    assert old.equals(before.drop(columns="pred").reset_index(drop=True))
    summary = spectral.summary_by_gamma(results)
    assert set(summary.loc[summary["track"] == "supervised", "gamma"]) == {*base.pretrain.supervised.noise_ratios,
                                                                          NEW_GAMMA}
    # the Fig. 1 analog gains the new point (supervised row: x in γ %)
    fig = plots.id_ood_vs_gamma(results)
    tracks = sorted(results["track"].unique())
    ax = fig.axes[2 * tracks.index("supervised")]
    xs = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections if len(c.get_offsets())])
    assert np.isclose(xs, 100 * NEW_GAMMA).any()

    # and a second run reads everything
    spies.reset()
    _run_01_02(new)
    assert spies.trained == [] and spies.probed == [] and spies.fits == 0
