"""Chapter 04's paper path on tiny data in the real on-disk formats: CIFAR-100 pickles (torchvision),
a Clothing1M ImageFolder tree, and a transformers vision model from a local folder (the MSN slot)."""

import hashlib
import pickle

import numpy as np
import pytest
import torch
import yaml
from paper_layouts import tiny_vit, write_image_folder

from nml.chapters.ch04_turn import run as turn_chapter
from nml.config import load_params, load_raw
from nml.models.image_encoders import ENCODER_REGISTRY, HFImageEncoder, create_encoder


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _tiny_cifar100(root, monkeypatch, per_class=6, n_classes=4):
    import torchvision.datasets

    folder = root / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", per_class), ("test", per_class // 2)):
        labels = np.repeat(np.arange(n_classes), n)
        # class-coloured images so features differ by class; real files are latin1-decoded Python 2 pickles
        data = np.clip(rng.normal(50 + 50 * labels[:, None], 20, size=(len(labels), 3072)), 0, 255).astype(np.uint8)
        (folder / name).write_bytes(pickle.dumps({"data": data, "fine_labels": labels.tolist(),
                                                  "coarse_labels": (labels // 2).tolist()}))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)],
                                                "coarse_label_names": [f"s{i}" for i in range(20)]}))
    cls = torchvision.datasets.CIFAR100
    monkeypatch.setattr(cls, "train_list", [["train", _md5(folder / "train")]])
    monkeypatch.setattr(cls, "test_list", [["test", _md5(folder / "test")]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / "meta")})


def test_hf_image_encoder_from_a_local_folder(tmp_path):
    name = f"hf:{tiny_vit(tmp_path / 'vit')}"
    assert ENCODER_REGISTRY.check(name) == name
    enc = create_encoder(name)
    assert isinstance(enc, HFImageEncoder) and enc.dim == 16 and enc.image_size == 32
    x = torch.rand(3, 1, 20, 20) * 2 - 1  # the offline splits' convention: gray in [-1, 1]
    out = enc(x)
    assert out.shape == (3, 16) and torch.isfinite(out).all()
    out.sum().backward()  # trainable: fine-tuning reaches the transformer
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


@pytest.fixture
def turn_paper_params(tmp_path, monkeypatch, nml_home_with_assets):
    data_root = tmp_path / "datasets"
    _tiny_cifar100(data_root, monkeypatch)
    write_image_folder(data_root / "clothing1m", splits=("train", "test"), classes=("shirt", "jacket", "dress"), seed=1)
    vit = f"hf:{tiny_vit(tmp_path / 'vit')}"
    raw, _ = load_raw("paper")
    raw.update(device="cpu", data_root=str(data_root), num_workers=0)
    # training in this process; the torchrun launcher has its own tests (test_distributed_training.py,
    # test_turn_torchrun.py)
    raw["runtime"]["launcher"] = "local"
    raw["pretrain"].update(model="resnet18", image_size=32)
    # chapters 01-03 need ImageNet / DomainNet folders; here only 04's data is on disk
    raw["spectral"].update(id_tasks=["cifar100"], ood=[{"name": "c", "train": "cifar100", "test": ["cifar100"]}])
    raw["nmtune"]["runtime"].update(task="cifar100")
    raw["pretrain"]["dataset"] = "cifar100"
    raw["pretrain"]["contrastive"].update(enabled=False, dataset=None)
    for section in (raw["nmtune"], raw["nmtune"]["ablation"], raw["nmtune"]["noisy_downstream"]):
        section["checkpoints"]["tracks"] = ["supervised"]
    t = raw["turn"]
    small = {"epochs": 2, "batch_size": 4, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-5}
    t.update(backbones=[{"name": vit}, {"name": "efficientnet-lite0", "image_size": 32}], seeds=[0], n_jobs=1,
             noise=[{"kind": "uniform", "ratio": 0.5}, {"kind": "asymmetric", "ratio": 0.4}, {"kind": "instance", "ratio": 0.4}],
             mild_noise=None, lp=small, fft=small, turn={"epochs_fft": 2})
    t["two_networks"].update(views=2, warmup_epochs=1, batch_size=4)
    t["components"].update(backbones=[vit])
    t["sensitivity"].update(backbone=vit, epochs_lp=[1], epochs_fft=[1], tau=[0.5])
    t["purity"].update(backbone=vit, tau=[0.5], cv_folds=2, noise=[{"kind": "uniform", "ratio": 0.5}])
    t["tsne"].update(backbones=[vit], n_points=10, perplexity=2, noise=[{"kind": "uniform", "ratio": 0.5}])
    t["timing"].update(backbone=vit, epochs=2, warmup_epochs=1, noise={"kind": "uniform", "ratio": 0.5})
    path = tmp_path / "paper-turn.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path=path), vit


def test_turn_paper_profile_runs_on_real_layouts(turn_paper_params):
    params, vit = turn_paper_params
    ctx = turn_chapter.prepare(params, checkpoints=[])
    assert len(ctx.train.y) == 24 and len(ctx.test.y) == 12 and isinstance(ctx.train.x, torch.utils.data.Dataset)
    assert ctx.features[vit].views.shape == (24, 2, 16) and ctx.features["efficientnet-lite0"].train.shape == (24, 1280)
    # CIFAR-100's asymmetric noise moves labels within their super-class only
    asym = ctx.labels(params.turn.noise[1], 0)
    moved = np.flatnonzero(asym.is_noisy)
    from nml.noise import CIFAR100_SUPERCLASSES

    group = {c: g for g, members in enumerate(CIFAR100_SUPERCLASSES) for c in members}
    assert len(moved) and all(group[asym.labels[i]] == group[ctx.train.y[i]] for i in moved)
    runs = turn_chapter.table2(ctx)
    assert len(runs) == 2 * 3 * len(params.turn.methods)
    assert runs["best"].between(0, 1).all() and (runs["best_oracle"] >= runs[["best", "last"]].max(axis=1) - 1e-12).all()
    assert (runs["fit_seconds"] > 0).all() and (runs["n_val"] >= 4).all()  # the paper's 5% validation split, stratified
    assert all(len(p) == len(ctx.test.y) for p in runs["pred_best"])
    # T4's timing study re-runs the encoder on the images on disk (a lazy Subset of the dataset)
    timing = turn_chapter.timing(ctx)
    assert set(timing["method"]) == {"turn", "dividemix-lp", "unicon-lp"} and timing["exclusive"].all()
    assert (timing.loc[timing["method"] != "turn", "way"] == "encoder every batch").all()


def test_turn_paper_profile_on_an_image_folder_set(turn_paper_params):
    params, vit = turn_paper_params
    params = params.model_copy(update={"turn": params.turn.model_copy(update={
        "dataset": "clothing1m", "methods": ["ce-lp", "turn"], "noise": [params.turn.noise[0]]})})
    ctx = turn_chapter.prepare(params, checkpoints=[])
    assert len(ctx.train.y) == 12 and set(ctx.train.y) == {0, 1, 2}
    runs = turn_chapter.table2(ctx)
    assert set(runs["method"]) == {"ce-lp", "turn"} and len(runs) == 2 * 2
    sel = runs[runs["method"] == "turn"].iloc[0]["selection"]
    assert len(sel) == 2 and all(0 < s["n_subset"] <= 12 for s in sel)
