"""Chapter 01: pre-train one backbone per (track, γ, seed) on noisy labels."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from nml._infra.runtime import Runtime, resolve_runtime
from nml.config import Params
from nml.data.catalog import get_dataset
from nml.models.backbones import (
    resolve_device,
)
from nml.models.features import (
    array_id,
)
from nml.models.preprocess import (
    gray_tensor,
    gray_transform_id,
)
from nml.models.pretrain import (
    Checkpoint,
    ContrastiveTrainer,
    PretrainSpec,
    SupervisedTrainer,
    captions_for,
)
from nml.noise import inject_noise, pair_swap_noise

log = logging.getLogger("nml.chapters.ch01_pretraining.run")


@dataclass
class PretrainData:
    """The pre-training split and what is held out of it for the downstream chapters."""

    x_train: torch.Tensor | torch.utils.data.Dataset
    y_train: np.ndarray
    x_test: torch.Tensor | torch.utils.data.Dataset
    y_test: np.ndarray
    classes: list[str]
    data_id: str
    in_chans: int
    transform: str
    heldout_train_indices: np.ndarray  # indices into the full train split never used for pre-training
    test_indices: np.ndarray  # indices into the full test split used for the clean test accuracy


def _stratified_indices(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    idx = np.arange(len(labels))
    if n is None or n >= len(labels):
        return idx
    chosen, _ = train_test_split(idx, train_size=n, stratify=labels, random_state=seed)
    return np.sort(chosen)


def load_pretrain_data(params: Params) -> PretrainData:
    """Load the pre-training dataset named in ``params.pretrain`` (offline or paper layout)."""
    p = params.pretrain
    entry = get_dataset(p.dataset)
    if entry.source != "offline":
        return _load_paper_pretrain_data(params)
    if p.dataset != "fashion-mnist":
        raise ValueError(f"pretrain.dataset: offline pre-training supports 'fashion-mnist', got {p.dataset!r}")
    from nml.data.fashion_mnist import load_fashion_mnist

    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    train_idx = _stratified_indices(train.labels, p.n_train, p.data_seed)
    test_idx = _stratified_indices(test.labels, p.n_test, p.data_seed)
    heldout = np.setdiff1d(np.arange(len(train.labels)), train_idx)
    x_train = gray_tensor(train.images[train_idx], p.image_size)
    x_test = gray_tensor(test.images[test_idx], p.image_size)
    return PretrainData(
        x_train=x_train,
        y_train=train.labels[train_idx].astype(np.int64),
        x_test=x_test,
        y_test=test.labels[test_idx].astype(np.int64),
        classes=list(train.classes),
        data_id=array_id(x_train, train.labels[train_idx]),
        in_chans=1,
        transform=gray_transform_id(p.image_size),
        heldout_train_indices=heldout,
        test_indices=test_idx,
    )


def _load_paper_pretrain_data(params: Params) -> PretrainData:
    """ImageFolder / torchvision pre-training sets with timm's transforms (paper profile)."""
    import timm
    from timm.data import create_transform, resolve_data_config

    from nml.data.catalog import dataset_root
    from nml.data.paper import load_image_folder

    p = params.pretrain
    root = dataset_root(p.dataset, params.data_root)
    probe = timm.create_model(p.model, pretrained=False, num_classes=0)
    cfg = resolve_data_config({"input_size": (3, p.image_size, p.image_size)}, model=probe)
    # timm's ImageNet training transform (random-resized crop, flip, colour jitter), drawn per image
    # in the DataLoader's workers and seeded per (seed, epoch, image): nml.models.engine
    train_tf = create_transform(**cfg, is_training=p.augment)
    eval_tf = create_transform(**cfg)
    train = load_image_folder(root, "train", train_tf)
    test = load_image_folder(root, "val", eval_tf)
    y_train, y_test = np.asarray(train.targets), np.asarray(test.targets)
    train_idx = _stratified_indices(y_train, p.n_train, p.data_seed)
    test_idx = _stratified_indices(y_test, p.n_test, p.data_seed)
    return PretrainData(
        x_train=torch.utils.data.Subset(train, train_idx),
        y_train=y_train[train_idx],
        x_test=torch.utils.data.Subset(test, test_idx),
        y_test=y_test[test_idx],
        classes=list(train.classes),
        data_id=f"{p.dataset}:{len(y_train)}:{p.n_train}:{p.data_seed}:timm-train-transform-{p.augment}",
        in_chans=3,
        transform=f"timm-{p.image_size}",
        heldout_train_indices=np.setdiff1d(np.arange(len(y_train)), train_idx),
        test_indices=test_idx,
    )


def training_runtime(params: Params) -> Runtime:
    """This process's training runtime (joins torchrun's process group when launched by it)."""
    return resolve_runtime(params.runtime, resolve_device(params.device), num_workers=params.num_workers)


def _spec(params: Params, data: PretrainData, track: str, gamma: float, seed: int, extra: dict,
          runtime: Runtime) -> PretrainSpec:
    p = params.pretrain
    cfg = p.supervised.optim if track == "supervised" else p.contrastive.optim
    return PretrainSpec(
        track=track, model=p.model, data_id=data.data_id, in_chans=data.in_chans,
        num_classes=len(data.classes), noise_ratio=float(gamma), seed=int(seed),
        optim=cfg.model_dump(), augment=p.augment, extra=extra, precision=runtime.precision,
    )


def format_cell(track: str, gamma: float, seed: int) -> str:
    """A grid cell of notebook 01 as ``nml pretrain --cell`` takes it: ``supervised:0.1:0``."""
    return f"{track}:{gamma:g}:{seed}"


def parse_cell(params: Params, cell: str) -> tuple[str, float, int]:
    """``track:gamma:seed`` → a cell of ``params.pretrain.checkpoints()``; anything else is named."""
    grid = params.pretrain.checkpoints()
    try:
        track, gamma, seed = cell.split(":")
        wanted = (track, float(gamma), int(seed))
    except ValueError:
        raise ValueError(f"--cell {cell!r}: expected track:gamma:seed, e.g. supervised:0.1:0") from None
    for t, g, s in grid:
        if (t, float(g), int(s)) == wanted:
            return t, g, s
    raise ValueError(f"--cell {cell!r} is not in the params' grid; cells: {[format_cell(*c) for c in grid]}")


def _launched_if_asked(params: Params, spec: PretrainSpec) -> None:
    """With ``runtime.launcher: torchrun``, train an uncached checkpoint in ``torchrun``'s processes
    (``nml pretrain``) and wait; the caller then reads it from the cache."""
    if params.runtime.launcher != "torchrun" or spec.path().exists():
        return
    from nml._infra.launch import run_torchrun
    from nml.config import dump_params

    run_torchrun(params.runtime, "pretrain", dump_params(params), format_cell(spec.track, spec.noise_ratio, spec.seed))


def train_supervised(params: Params, data: PretrainData, gamma: float, seed: int) -> Checkpoint:
    """Supervised pre-training with γ of each class's labels flipped to another class."""
    runtime = training_runtime(params)
    noisy = inject_noise(data.y_train, "symmetric", gamma, seed=seed, n_classes=len(data.classes))
    spec = _spec(params, data, "supervised", gamma, seed, {"noise": "symmetric", "realized": noisy.realized_ratio},
                 runtime)
    _launched_if_asked(params, spec)
    trainer = SupervisedTrainer(
        spec, params.pretrain.supervised.optim, runtime.device, None,
        x_train=data.x_train, y_train=noisy.labels, x_test=data.x_test, y_test=data.y_test, runtime=runtime,
    )
    return trainer.run()


def caption_embeddings(params: Params, data: PretrainData) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Unique captions, their embeddings, and per-class template embeddings (C×T×E)."""
    from nml.models.text_encoders import (
        SentenceTransformerEncoder,
        cached_text_embeddings,
    )

    c = params.pretrain.contrastive
    captions = [t.format(label=name.lower()) for t in c.caption_templates for name in data.classes]
    emb = cached_text_embeddings(SentenceTransformerEncoder(c.text_encoder), captions)
    per_class = emb.reshape(len(c.caption_templates), len(data.classes), -1).transpose(1, 0, 2)
    return captions, emb, per_class


def _image_text_pairs(params: Params, gamma: float, seed: int):
    """Real image-text pairs (paper profile): every pair has its own caption; γ of them swapped."""
    import timm
    from timm.data import create_transform, resolve_data_config

    from nml.data.catalog import dataset_root
    from nml.data.paper import load_image_text
    from nml.models.text_encoders import (
        SentenceTransformerEncoder,
        cached_text_embeddings,
    )

    c, size = params.pretrain.contrastive, params.pretrain.image_size
    model = timm.create_model(params.pretrain.model, pretrained=False, num_classes=0)
    transform = create_transform(**resolve_data_config({"input_size": (3, size, size)}, model=model),
                                 is_training=params.pretrain.augment)
    pairs = load_image_text(dataset_root(c.dataset, params.data_root), transform)
    n = len(pairs) if c.n_train is None else min(c.n_train, len(pairs))
    subset = np.sort(np.random.default_rng(params.pretrain.data_seed).permutation(len(pairs))[:n])
    emb = cached_text_embeddings(SentenceTransformerEncoder(c.text_encoder), [pairs.captions[i] for i in subset])
    swap = pair_swap_noise(n, gamma, seed=seed)
    return torch.utils.data.Subset(pairs, subset), swap.text_index.astype(np.int64), emb, swap


def train_contrastive(params: Params, data: PretrainData, gamma: float, seed: int, text: tuple | None = None) -> Checkpoint:
    """CLIP-style pre-training where γ of the image–text pairs carry another image's caption.

    Offline (``contrastive.dataset: null``): the pre-training images, captioned from their class
    names with random templates; a swapped pair always gets a caption of another class. With a
    named image-text dataset (paper profile), each pair keeps its own caption.
    """
    c = params.pretrain.contrastive
    runtime = training_runtime(params)
    captions, emb, per_class = text if text is not None else caption_embeddings(params, data)
    if c.dataset is not None:
        x, ids, emb, swap = _image_text_pairs(params, gamma, seed)
        n = len(ids)
    else:
        n = len(data.y_train) if c.n_train is None else min(c.n_train, len(data.y_train))
        subset = _stratified_indices(data.y_train, n, params.pretrain.data_seed)
        labels = data.y_train[subset]
        ids, _ = captions_for(labels, data.classes, c.caption_templates, seed=seed)
        swap = pair_swap_noise(len(ids), gamma, seed=seed, groups=labels)
        ids = ids[swap.text_index]
        x = data.x_train[torch.as_tensor(subset)] if isinstance(data.x_train, torch.Tensor) else torch.utils.data.Subset(data.x_train, subset)
    spec = _spec(params, data, "contrastive", gamma, seed, {
        "noise": "pair_swap", "n_train": int(n), "templates": list(c.caption_templates), "pairs": c.dataset,
        "text_encoder": c.text_encoder, "embed_dim": c.embed_dim, "temperature_init": c.temperature_init,
        "realized": float(swap.is_swapped.mean()),
    }, runtime)
    _launched_if_asked(params, spec)
    trainer = ContrastiveTrainer(
        spec, c.optim, runtime.device, None, runtime=runtime,
        x_train=x, caption_ids=ids, caption_embeddings=emb, x_test=data.x_test, y_test=data.y_test,
        class_prototypes_text=per_class, embed_dim=c.embed_dim, temperature_init=c.temperature_init,
    )
    return trainer.run()


def pretrain_all(params: Params, data: PretrainData | None = None) -> list[Checkpoint]:
    """Train (or load from the cache) every checkpoint of the params' grid, in grid order."""
    data = data if data is not None else load_pretrain_data(params)
    grid = params.pretrain.checkpoints()
    text = caption_embeddings(params, data) if any(t == "contrastive" for t, _, _ in grid) else None
    out = []
    for i, (track, gamma, seed) in enumerate(grid, 1):
        log.debug("checkpoint %d/%d: %s gamma=%.2f seed=%d", i, len(grid), track, gamma, seed)
        if track == "supervised":
            out.append(train_supervised(params, data, gamma, seed))
        else:
            out.append(train_contrastive(params, data, gamma, seed, text))
    return out


def train_cell(params: Params, cell: str) -> Checkpoint:
    """``nml pretrain``: train (or read) one checkpoint of the grid in this process — one of
    ``torchrun``'s processes when launched by it (each loads the data; rank 0 writes)."""
    track, gamma, seed = parse_cell(params, cell)
    params = params.model_copy(update={"runtime": params.runtime.model_copy(update={"launcher": "local"})})
    runtime = training_runtime(params)
    data = load_pretrain_data(params)
    if track == "supervised":
        return train_supervised(params, data, gamma, seed)
    with runtime.main_first():  # rank 0 embeds the captions into the text cache, the others read it
        text = caption_embeddings(params, data)
    return train_contrastive(params, data, gamma, seed, text)


def history_frame(checkpoints: list[Checkpoint]) -> pd.DataFrame:
    """Training curves of every checkpoint as one tidy frame."""
    rows = []
    for ck in checkpoints:
        for row in ck.history:
            rows.append({"track": ck.spec.track, "gamma": ck.spec.noise_ratio, "seed": ck.spec.seed, **row})
    return pd.DataFrame(rows)


def pretraining_table(checkpoints: list[Checkpoint]) -> pd.DataFrame:
    """Table 3 analog: clean test accuracy (zero-shot for the contrastive track) per γ."""
    rows = [
        {"track": ck.spec.track, "gamma_pct": round(100 * ck.spec.noise_ratio), "seed": ck.spec.seed,
         "realized_noise_pct": 100 * ck.spec.extra.get("realized", float("nan")),
         "clean_test_acc_pct": 100 * ck.final["test_acc"]}
        for ck in checkpoints
    ]
    df = pd.DataFrame(rows)
    return (
        df.groupby(["track", "gamma_pct"])
        .agg(seeds=("seed", "count"), realized_noise_pct=("realized_noise_pct", "mean"),
             clean_test_acc_mean=("clean_test_acc_pct", "mean"), clean_test_acc_std=("clean_test_acc_pct", "std"))
        .reset_index()
    )


def spec_frame(checkpoints: list[Checkpoint]) -> pd.DataFrame:
    return pd.DataFrame([{**asdict(ck.spec), "path": str(ck.path)} for ck in checkpoints])
