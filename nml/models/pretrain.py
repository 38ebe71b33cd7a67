"""Pre-training on noisy labels (notebook 01), with a checkpoint cache per (track, γ, seed).

Two tracks, as in NMTune Sec. 2:

* ``supervised``: a backbone trained with cross-entropy on labels of which a γ fraction per class
  was flipped to another class (``nml.noise.symmetric_noise``).
* ``contrastive``: a CLIP-style image encoder trained against frozen text embeddings of captions,
  a γ fraction of whose image–text pairs were swapped (``nml.noise.pair_swap_noise``).

Every finished epoch is saved atomically; a killed run resumes from the last finished epoch and,
because batches are drawn per (seed, epoch), ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nml._infra.cache import atomic_torch_save, record_cache_use, stable_hash
from nml._infra.paths import checkpoints_dir
from nml._infra.progress import tqdm
from nml._infra.runtime import Runtime
from nml._infra.training import (
    OptimConfig,
    channels_last,
    make_optimizer,
    make_scheduler,
    random_crop_flip,
)
from nml.models.backbones import create_backbone, feature_dim
from nml.models.engine import Stepper, batch_source, gather_outputs, global_sums, image_of

log = logging.getLogger("nml.models.pretrain")

# Bump when the training code changes in a way that changes the weights it produces
# (2: channels-last convolutions, fused AdamW).
PRETRAIN_CODE_VERSION = 2


@dataclass(frozen=True)
class PretrainSpec:
    """Everything that determines a pre-trained checkpoint; its hash names the cache file."""

    track: str
    model: str
    data_id: str
    in_chans: int
    num_classes: int
    noise_ratio: float
    seed: int
    optim: dict
    augment: bool
    extra: dict = field(default_factory=dict)
    precision: str = "fp32"  # the autocast dtype of training (runtime.precision, resolved)

    def key(self) -> str:
        fields = asdict(self)
        if fields["precision"] == "fp32":  # fp32 keeps the keys checkpoints had before precision was a choice
            del fields["precision"]
        return stable_hash({**fields, "code": PRETRAIN_CODE_VERSION})

    def path(self, root: Path | None = None) -> Path:
        root = Path(root) if root else checkpoints_dir()
        return root / self.track / f"{self.model}-g{round(100 * self.noise_ratio):02d}-s{self.seed}-{self.key()}.pt"


@dataclass
class Checkpoint:
    """A finished pre-training run: the backbone, its extra heads and its training curves."""

    spec: PretrainSpec
    backbone: torch.nn.Module
    heads: dict[str, Any]
    history: list[dict]
    path: Path

    @property
    def final(self) -> dict:
        return self.history[-1]


def _load_state(path: Path) -> dict | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a torn or foreign file is never used: it is trained again
        log.warning("ignoring unreadable checkpoint %s (%s)", path, err)
        return None


def take(images: torch.Tensor | torch.utils.data.Dataset, idx: torch.Tensor) -> torch.Tensor:
    """A batch of images by index from an in-memory tensor or any map-style dataset.

    In-memory tensors serve the offline profiles; a dataset yields ``(image, label)`` and only its
    image is used — labels come from the (noisy) label array. Training and evaluation over a
    dataset on disk read through :mod:`nml.models.engine`'s DataLoader instead; this is for a
    handful of images.
    """
    if isinstance(images, torch.Tensor):
        return images[idx]
    return torch.stack([image_of(images[int(i)]) for i in idx])


def eval_subset_indices(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray | None:
    """A fixed, class-stratified subset of ``n`` test images (None: all) scored after each epoch."""
    if n is None or n >= len(labels):
        return None
    from sklearn.model_selection import train_test_split

    chosen, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels, random_state=seed)
    return np.sort(chosen)


class _LossModule(torch.nn.Module):
    """Backbone and heads as one module whose forward is the trainer's loss: what DDP wraps."""

    def __init__(self, trainer: _Trainer):
        super().__init__()
        self.backbone, self.heads = trainer.backbone, trainer.heads
        self._step = trainer.step

    def forward(self, xb: torch.Tensor, idx: torch.Tensor):
        return self._step(xb, idx)


class _Trainer:
    """Epoch loop over :mod:`nml.models.engine` (in-memory or streamed batches, one process or
    many), with atomic resumable saves at epoch ends (and every ``checkpoint_every_steps`` steps);
    subclasses define one step and the evaluation."""

    eval_batch_size = 512

    def __init__(self, spec: PretrainSpec, optim: OptimConfig, device: torch.device, root: Path | None,
                 runtime: Runtime | None = None):
        self.spec, self.cfg = spec, optim
        self.runtime = runtime if runtime is not None else Runtime(device=torch.device(device))
        self.device = self.runtime.device
        self.final_path = spec.path(root)
        self.partial_path = self.final_path.with_suffix(".partial.pt")
        torch.manual_seed(spec.seed)  # weight init
        self.backbone = channels_last(create_backbone(spec.model, num_classes=0, in_chans=spec.in_chans).to(self.device))
        self.heads = self.build_heads().to(self.device)

    @property
    def cache_key(self) -> str:
        """``checkpoints/<track>/<file stem>`` (the stem ends in the spec's content key): how the
        checkpoint is named in the provenance of results (:func:`nml._infra.cache.record_cache_use`)."""
        return f"checkpoints/{self.spec.track}/{self.final_path.stem}"

    def build_heads(self) -> torch.nn.ModuleDict:
        raise NotImplementedError

    def step(self, xb: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def evaluate(self, indices: np.ndarray | None = None) -> dict:
        raise NotImplementedError

    def train_images(self) -> torch.Tensor | torch.utils.data.Dataset:
        raise NotImplementedError

    def test_labels(self) -> np.ndarray:
        raise NotImplementedError

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        yield from self.backbone.parameters()
        yield from self.heads.parameters()

    def run(self) -> Checkpoint:
        with torch.enable_grad():  # also when called inside torch.no_grad()
            return self._run()

    def _batches(self):
        augment = random_crop_flip if self.spec.augment else None
        return batch_source(self.train_images(), None, self.cfg.batch_size, seed=self.spec.seed, runtime=self.runtime,
                            augment=augment)

    def _save_partial(self, stepper: Stepper, opt, sched, history, epoch: int, step: int, sums: dict,
                      seen: int) -> tuple[dict, int]:
        """Rank 0 writes the resumable state (all ranks hold the same weights); the running
        epoch's statistics are summed over the ranks first (a collective every rank joins)."""
        sums, seen = global_sums(sums, seen, self.runtime)
        if self.runtime.is_main:
            atomic_torch_save(self.partial_path, {
                "spec_key": self.spec.key(), "backbone": self.backbone.state_dict(), "heads": self.heads.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "engine": stepper.state_dict(),
                "history": history, "epoch": epoch, "step": step, "sums": sums, "seen": seen,
            })
        self.runtime.barrier()
        return sums, seen

    def _run(self) -> Checkpoint:
        rt = self.runtime
        if self.final_path.exists():
            state = _load_state(self.final_path)
            if state is not None:
                log.debug("reusing checkpoint %s", self.final_path)
                record_cache_use(self.cache_key, reused=True)
                return self._checkpoint(state)
        cfg = self.cfg
        batches = self._batches()
        steps = batches.steps()
        opt = make_optimizer(list(self.parameters()), cfg)
        sched = make_scheduler(opt, cfg, steps)
        stepper = Stepper(_LossModule(self), opt, rt, sched)
        history: list[dict] = []
        start_epoch, start_step, carried, carried_seen = 0, 0, {}, 0
        if self.partial_path.exists():
            state = _load_state(self.partial_path)
            if state is not None and state["spec_key"] == self.spec.key():
                self.backbone.load_state_dict(state["backbone"])
                self.heads.load_state_dict(state["heads"])
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                stepper.load_state_dict(state.get("engine", {}))
                history, start_epoch, start_step = state["history"], state["epoch"], state.get("step", 0)
                if rt.is_main:  # the running epoch's statistics so far, counted once
                    carried, carried_seen = state.get("sums", {}), state.get("seen", 0)
                log.info("resuming %s from epoch %d/%d, step %d/%d", self.final_path.name, start_epoch, cfg.epochs,
                         start_step, steps)
        subset = eval_subset_indices(self.test_labels(), rt.eval_subset, self.spec.seed)
        every = rt.checkpoint_every_steps
        desc = f"train {self.spec.track} g={self.spec.noise_ratio:.2f} s={self.spec.seed}"
        for epoch in tqdm(range(start_epoch, cfg.epochs), desc=desc, initial=start_epoch, total=cfg.epochs, leave=False,
                          disable=not rt.is_main):
            self.backbone.train()
            self.heads.train()
            first = start_step if epoch == start_epoch else 0
            sums, seen = (dict(carried), carried_seen) if epoch == start_epoch else ({}, 0)
            for done, micro, n_global in batches.epoch(epoch, first):
                step = done + 1  # optimiser steps taken in this epoch
                stats = stepper.step(micro, n_global, lambda trained, xb, idx: trained(xb, idx))
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                seen += sum(len(idx) for _, idx in micro)
                if every and step % every == 0 and step < steps:
                    # rank 0 carries the statistics summed over the ranks, the others start again
                    # from zero: the epoch's final sum counts each sample once
                    total, total_seen = self._save_partial(stepper, opt, sched, history, epoch, step, sums, seen)
                    sums, seen = (total, total_seen) if rt.is_main else ({}, 0)
            sums, seen = global_sums(sums, seen, rt)
            self.backbone.eval()
            self.heads.eval()
            last = epoch + 1 == cfg.epochs
            scores = self.evaluate(None if last else subset)
            if subset is not None and not last:
                scores = {f"{k}_subset": v for k, v in scores.items()}
            row = {"epoch": epoch + 1, **{k: v / seen for k, v in sums.items()}, **scores}
            history.append(row)
            self._save_partial(stepper, opt, sched, history, epoch + 1, 0, {}, 0)
        state = {
            "spec": asdict(self.spec),
            "spec_key": self.spec.key(),
            "backbone": self.backbone.state_dict(),
            "heads": self.heads.state_dict(),
            "history": history,
        }
        if rt.is_main:
            atomic_torch_save(self.final_path, state)
            self.partial_path.unlink(missing_ok=True)
            log.info("trained and cached checkpoint %s", self.final_path.name)
        rt.barrier()
        record_cache_use(self.cache_key, reused=False)
        return self._checkpoint(state)

    def _checkpoint(self, state: dict) -> Checkpoint:
        self.backbone.load_state_dict(state["backbone"])
        self.heads.load_state_dict(state["heads"])
        self.backbone.eval()
        self.heads.eval()
        return Checkpoint(self.spec, self.backbone.cpu(), dict(self.heads.cpu().items()), state["history"], self.final_path)


class SupervisedTrainer(_Trainer):
    """Cross-entropy on (possibly noisy) labels; evaluates clean test accuracy every epoch."""

    def __init__(self, spec, optim, device, root, *, x_train, y_train, x_test, y_test, runtime: Runtime | None = None):
        self.x_train, self.y_train = x_train, torch.as_tensor(y_train, dtype=torch.long)
        self.x_test, self.y_test = x_test, torch.as_tensor(y_test, dtype=torch.long)
        super().__init__(spec, optim, device, root, runtime)

    def build_heads(self):
        return torch.nn.ModuleDict({"classifier": torch.nn.Linear(feature_dim(self.backbone), self.spec.num_classes)})

    def train_images(self):
        return self.x_train

    def test_labels(self):
        return self.y_test.numpy()

    def step(self, xb, idx):
        logits = self.heads["classifier"](self.backbone(xb))
        yb = self.y_train[idx].to(self.device)
        loss = F.cross_entropy(logits, yb)
        acc = (logits.argmax(1) == yb).float().mean()
        return loss, {"train_loss": loss.detach(), "train_acc_noisy_labels": acc}

    def evaluate(self, indices=None):
        logits = gather_outputs(lambda x: self.heads["classifier"](self.backbone(x)), self.x_test, self.runtime,
                                batch_size=self.eval_batch_size, indices=indices)
        truth = self.y_test if indices is None else self.y_test[torch.from_numpy(indices)]
        return {"test_acc": float((logits.argmax(1) == truth).float().mean())}


class LogitScale(torch.nn.Module):
    """CLIP's learnable temperature, stored as log(1/T) and capped at 100 as in CLIP."""

    def __init__(self, init: float):
        super().__init__()
        self.log_scale = torch.nn.Parameter(torch.tensor(float(np.log(init))))

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=100.0)


class ContrastiveTrainer(_Trainer):
    """CLIP-style training of the image tower against frozen text embeddings (LiT, reversed).

    Loss: symmetric InfoNCE over the batch with a learnable temperature. Captions repeat (a few
    templates × a few class names), so every batch entry carrying the *same caption* counts as a
    positive (soft targets) rather than as a false negative. Evaluation: zero-shot accuracy on
    the clean test set, classifying by cosine to each class's mean template embedding.
    """

    def __init__(self, spec, optim, device, root, *, x_train, caption_ids, caption_embeddings, x_test, y_test,
                 class_prototypes_text, embed_dim, temperature_init, runtime: Runtime | None = None):
        if runtime is not None and runtime.accumulation(optim.batch_size)[1] > 1:
            raise ValueError("contrastive pre-training contrasts the whole batch at once, so it cannot accumulate "
                             "gradients: set runtime.per_device_batch_size to null (batch_size / processes)")
        self.x_train = x_train
        self.caption_ids = torch.as_tensor(caption_ids, dtype=torch.long)
        self.caption_embeddings = torch.as_tensor(caption_embeddings, dtype=torch.float32)
        self.x_test, self.y_test = x_test, torch.as_tensor(y_test, dtype=torch.long)
        self.class_text = torch.as_tensor(class_prototypes_text, dtype=torch.float32)  # C×T×E_text
        self.embed_dim, self.temperature_init = embed_dim, temperature_init
        super().__init__(spec, optim, device, root, runtime)

    def build_heads(self):
        text_dim = self.caption_embeddings.shape[1]
        return torch.nn.ModuleDict(
            {
                "image_proj": torch.nn.Linear(feature_dim(self.backbone), self.embed_dim),
                "text_proj": torch.nn.Linear(text_dim, self.embed_dim),
                "logit_scale": LogitScale(1.0 / self.temperature_init),
            }
        )

    def train_images(self):
        return self.x_train

    def test_labels(self):
        return self.y_test.numpy()

    def _embed_images(self, x):
        return F.normalize(self.heads["image_proj"](self.backbone(x)), dim=-1)

    def _embed_text(self, t):
        return F.normalize(self.heads["text_proj"](t), dim=-1)

    def step(self, xb, idx):
        ids = self.caption_ids[idx].to(self.device)
        img = self._embed_images(xb)
        txt = self._embed_text(self.caption_embeddings[ids.cpu()].to(self.device))
        if self.runtime.distributed:
            # every process contrasts the whole global batch: the embeddings are gathered with
            # their gradients (each process's loss is the global loss; DDP's average of the
            # gathered gradients is the single-process gradient)
            img, txt, ids = _gathered(img), _gathered(txt), _gathered(ids, differentiable=False)
        scale = self.heads["logit_scale"]()
        logits = scale * img @ txt.T
        same = (ids[:, None] == ids[None, :]).float()
        targets = same / same.sum(1, keepdim=True)
        loss = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
        acc = (same[torch.arange(len(ids)), logits.argmax(1)] > 0).float().mean()
        return loss, {"train_loss": loss.detach(), "train_pair_acc": acc}

    def evaluate(self, indices=None):
        with torch.no_grad():
            c, t, e = self.class_text.shape
            protos = self._embed_text(self.class_text.reshape(c * t, e).to(self.device)).reshape(c, t, -1).mean(1)
            protos = F.normalize(protos, dim=-1)
            logits = gather_outputs(lambda x: self._embed_images(x) @ protos.T, self.x_test, self.runtime,
                                    batch_size=self.eval_batch_size, indices=indices)
        truth = self.y_test if indices is None else self.y_test[torch.from_numpy(indices)]
        return {"test_acc": float((logits.argmax(1) == truth).float().mean())}


def _gathered(t: torch.Tensor, *, differentiable: bool = True) -> torch.Tensor:
    """``t`` of every process, concatenated in rank order (with gradients when ``differentiable``)."""
    import torch.distributed as dist

    if differentiable:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(t))
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def captions_for(labels: np.ndarray, class_names: list[str], templates: list[str], *, seed: int) -> tuple[np.ndarray, list[str]]:
    """Caption every image from its class name with a randomly drawn template.

    Returns ``(caption_ids, captions)``: ``captions`` lists the unique strings
    (template-major), ``caption_ids[i]`` indexes the caption of image ``i``.
    """
    rng = np.random.default_rng(seed)
    n_t = len(templates)
    captions = [t.format(label=name.lower()) for t in templates for name in class_names]
    template_of = rng.integers(0, n_t, size=len(labels))
    ids = template_of * len(class_names) + np.asarray(labels)
    return ids.astype(np.int64), captions
