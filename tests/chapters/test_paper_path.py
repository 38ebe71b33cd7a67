"""The paper profile's code path, end to end, on tiny data written in the real on-disk layouts."""

import numpy as np
import pytest
import yaml
from paper_layouts import write_image_folder

from nml.chapters.ch01_pretraining import run as pretraining
from nml.chapters.ch02_spectral import run as spectral
from nml.chapters.ch03_nmtune import run as nmtune
from nml.config import load_params, load_raw


@pytest.fixture
def paper_params(tmp_path, nml_home_with_assets):
    data_root = tmp_path / "datasets"
    write_image_folder(data_root / "imagenet-1k", ["train", "val"])
    for domain in ["real", "sketch"]:
        write_image_folder(data_root / f"domainnet-{domain}", ["train", "test"], seed=1)
    pairs = data_root / "yfcc15m"
    write_image_folder(pairs / "images", ["all"], seed=2)
    rows = [f"images/all/{p.parent.name}/{p.name},a photo of a {p.parent.name} number {i}"
            for i, p in enumerate(sorted((pairs / "images" / "all").rglob("*.png")))]
    (pairs / "captions.csv").write_text("image,caption\n" + "\n".join(rows) + "\n")
    raw, _ = load_raw("paper")
    raw.update(device="cpu", data_root=str(data_root), num_workers=0)
    # training in this process; the torchrun launcher has its own tests (test_distributed_training.py,
    # test_turn_torchrun.py)
    raw["runtime"]["launcher"] = "local"
    raw.pop("turn")  # chapter 04's paper path has its own test (test_turn_paper_path.py)
    raw["pretrain"].update(model="resnet18", image_size=32)
    raw["pretrain"]["supervised"].update(noise_ratios=[0.0, 0.2], seeds=[0])
    raw["pretrain"]["supervised"]["optim"].update(epochs=1, batch_size=4, warmup_epochs=0)
    raw["pretrain"]["contrastive"].update(noise_ratios=[0.5], seeds=[0], embed_dim=8)
    raw["pretrain"]["contrastive"]["optim"].update(epochs=1, batch_size=4, warmup_epochs=0)
    raw["spectral"].update(id_tasks=["domainnet-real"],
                           ood=[{"name": "real-to-sketch", "train": "domainnet-real", "test": ["domainnet-sketch"]}])
    raw["spectral"]["probe"].update(epochs=2, batch_size=4)
    n = raw["nmtune"]
    n["tuner"].update(epochs=1, batch_size=4)
    # timm weights cannot be downloaded here: the packaged encoder stands in for the Table 2 backbones
    n["real_models"].update(encoders=["efficientnet-lite0"], image_size={"efficientnet-lite0": 32}, seeds=[0])
    small = {"tracks": ["supervised"], "noise_ratios": [0.0, 0.2], "seeds": [0]}
    n["ablation"].update(checkpoints=small, heads=[[3, "relu"]], loss_weights=[[0.0, 0.01, 0.01]])
    n["noisy_downstream"].update(checkpoints=small, noise_ratios=[0.0, 0.25])
    n["runtime"].update(task="domainnet-real", epochs=1, max_train=6)
    path = tmp_path / "paper-tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path=path)


def test_paper_profile_runs_on_real_layouts(paper_params):
    data = pretraining.load_pretrain_data(paper_params)
    assert data.in_chans == 3 and data.classes == ["cat", "dog", "eel"] and len(data.y_train) == 12
    checkpoints = pretraining.pretrain_all(paper_params, data)
    assert [(ck.spec.track, ck.spec.noise_ratio) for ck in checkpoints] == [
        ("supervised", 0.0), ("supervised", 0.2), ("contrastive", 0.5)]
    assert checkpoints[-1].spec.extra["pairs"] == "yfcc15m" and checkpoints[-1].spec.extra["n_train"] == 12
    assert checkpoints[-1].spec.extra["realized"] == 0.5
    downstream = spectral.load_downstream_data(paper_params, data.heldout_train_indices)
    assert set(downstream.splits) == {("domainnet-real", "train"), ("domainnet-real", "test"),
                                      ("domainnet-sketch", "train"), ("domainnet-sketch", "test")}
    results, spectra = spectral.evaluate_all(checkpoints, downstream, paper_params)
    assert set(results["kind"]) == {"ID", "OOD"}
    assert results["acc"].between(0, 1).all() and np.isfinite(results["sve"]).all()
    assert len(spectra) == 6  # 3 checkpoints x (1 ID + 1 OOD domain)

    # chapter 03 on the same on-disk data: ImageFolder datasets, not in-memory tensors
    assert downstream.mean is not None and len(downstream.std) == 3
    tuned = nmtune.tune_checkpoints(checkpoints, downstream, paper_params)
    assert set(tuned["method"]) == {"LP", "MLP", "NMTune"} and len(tuned) == 3 * 3 * 2
    real = nmtune.tune_real_models(downstream, paper_params)
    assert set(real["encoder"]) == {"efficientnet-lite0"} and (real["feature_dim"] == 1280).all()
    # the tuner's seed is these rows' replication seed: called ``seed``, as in every table
    assert "tuner_seed" not in real and set(real["seed"]) == set(paper_params.nmtune.real_models.seeds)
    assert len(nmtune.ablation(checkpoints, downstream, paper_params)) == 2 * 3  # 2 ckpts x (1 head + 1 weights + preset)
    noisy = nmtune.noisy_downstream(checkpoints, downstream, paper_params)
    assert set(noisy["downstream_noise"]) == {0.0, 0.25}
    rt = nmtune.runtime(checkpoints, downstream, paper_params)
    assert set(rt["n"]) == {6} and (rt["encoder_per_batch_s"] > 0).all()
