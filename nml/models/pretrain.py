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
from nml._infra.training import (
    OptimConfig,
    channels_last,
    epoch_generator,
    make_optimizer,
    make_scheduler,
    random_crop_flip,
    shuffled_batches,
)
from nml.models.backbones import create_backbone, feature_dim

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

    def key(self) -> str:
        return stable_hash({**asdict(self), "code": PRETRAIN_CODE_VERSION})

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

    In-memory tensors serve the offline profiles; a dataset (ImageFolder at paper scale) yields
    ``(image, label)`` and only its image is used — labels come from the (noisy) label array.
    """
    if isinstance(images, torch.Tensor):
        return images[idx]
    return torch.stack([images[int(i)][0] for i in idx])


def _eval_logits(model_fn, x, batch_size: int, device: torch.device) -> torch.Tensor:
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(x)))
            outs.append(model_fn(channels_last(take(x, idx).to(device))).float().cpu())
    return torch.cat(outs)


class _Trainer:
    """Epoch loop with atomic per-epoch saves and resume; subclasses define one step."""

    def __init__(self, spec: PretrainSpec, optim: OptimConfig, device: torch.device, root: Path | None):
        self.spec, self.cfg, self.device = spec, optim, device
        self.final_path = spec.path(root)
        self.partial_path = self.final_path.with_suffix(".partial.pt")
        torch.manual_seed(spec.seed)  # weight init
        self.backbone = channels_last(create_backbone(spec.model, num_classes=0, in_chans=spec.in_chans).to(device))
        self.heads = self.build_heads().to(device)

    @property
    def cache_key(self) -> str:
        """``checkpoints/<track>/<file stem>`` (the stem ends in the spec's content key): how the
        checkpoint is named in the provenance of results (:func:`nml._infra.cache.record_cache_use`)."""
        return f"checkpoints/{self.spec.track}/{self.final_path.stem}"

    def build_heads(self) -> torch.nn.ModuleDict:
        raise NotImplementedError

    def step(self, xb: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def evaluate(self) -> dict:
        raise NotImplementedError

    def n_train(self) -> int:
        raise NotImplementedError

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        yield from self.backbone.parameters()
        yield from self.heads.parameters()

    def run(self) -> Checkpoint:
        with torch.enable_grad():  # also when called inside torch.no_grad()
            return self._run()

    def _run(self) -> Checkpoint:
        if self.final_path.exists():
            state = _load_state(self.final_path)
            if state is not None:
                log.debug("reusing checkpoint %s", self.final_path)
                record_cache_use(self.cache_key, reused=True)
                return self._checkpoint(state)
        cfg = self.cfg
        steps = -(-self.n_train() // cfg.batch_size)
        opt = make_optimizer(list(self.parameters()), cfg)
        sched = make_scheduler(opt, cfg, steps)
        history: list[dict] = []
        start_epoch = 0
        if self.partial_path.exists():
            state = _load_state(self.partial_path)
            if state is not None and state["spec_key"] == self.spec.key():
                self.backbone.load_state_dict(state["backbone"])
                self.heads.load_state_dict(state["heads"])
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                history, start_epoch = state["history"], state["epoch"]
                log.info("resuming %s from epoch %d/%d", self.final_path.name, start_epoch, cfg.epochs)
        desc = f"train {self.spec.track} g={self.spec.noise_ratio:.2f} s={self.spec.seed}"
        for epoch in tqdm(range(start_epoch, cfg.epochs), desc=desc, initial=start_epoch, total=cfg.epochs, leave=False):
            gen = epoch_generator(self.spec.seed, epoch)
            self.backbone.train()
            self.heads.train()
            sums: dict[str, float] = {}
            seen = 0
            for idx in shuffled_batches(self.n_train(), cfg.batch_size, gen):
                xb = self.images(idx)
                if self.spec.augment:
                    xb = random_crop_flip(xb, gen)
                loss, stats = self.step(channels_last(xb.to(self.device)), idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
                seen += len(idx)
            self.backbone.eval()
            self.heads.eval()
            row = {"epoch": epoch + 1, **{k: v / seen for k, v in sums.items()}, **self.evaluate()}
            history.append(row)
            atomic_torch_save(
                self.partial_path,
                {
                    "spec_key": self.spec.key(),
                    "backbone": self.backbone.state_dict(),
                    "heads": self.heads.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "history": history,
                    "epoch": epoch + 1,
                },
            )
        state = {
            "spec": asdict(self.spec),
            "spec_key": self.spec.key(),
            "backbone": self.backbone.state_dict(),
            "heads": self.heads.state_dict(),
            "history": history,
        }
        atomic_torch_save(self.final_path, state)
        self.partial_path.unlink(missing_ok=True)
        log.info("trained and cached checkpoint %s", self.final_path.name)
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

    def __init__(self, spec, optim, device, root, *, x_train, y_train, x_test, y_test):
        self.x_train, self.y_train = x_train, torch.as_tensor(y_train, dtype=torch.long)
        self.x_test, self.y_test = x_test, torch.as_tensor(y_test, dtype=torch.long)
        super().__init__(spec, optim, device, root)

    def build_heads(self):
        return torch.nn.ModuleDict({"classifier": torch.nn.Linear(feature_dim(self.backbone), self.spec.num_classes)})

    def n_train(self):
        return len(self.x_train)

    def images(self, idx):
        return take(self.x_train, idx)

    def step(self, xb, idx):
        logits = self.heads["classifier"](self.backbone(xb))
        yb = self.y_train[idx].to(self.device)
        loss = F.cross_entropy(logits, yb)
        acc = (logits.argmax(1) == yb).float().mean()
        return loss, {"train_loss": loss.detach(), "train_acc_noisy_labels": acc}

    def evaluate(self):
        logits = _eval_logits(lambda x: self.heads["classifier"](self.backbone(x)), self.x_test, 512, self.device)
        return {"test_acc": float((logits.argmax(1) == self.y_test).float().mean())}


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

    def __init__(self, spec, optim, device, root, *, x_train, caption_ids, caption_embeddings, x_test, y_test, class_prototypes_text, embed_dim, temperature_init):
        self.x_train = x_train
        self.caption_ids = torch.as_tensor(caption_ids, dtype=torch.long)
        self.caption_embeddings = torch.as_tensor(caption_embeddings, dtype=torch.float32)
        self.x_test, self.y_test = x_test, torch.as_tensor(y_test, dtype=torch.long)
        self.class_text = torch.as_tensor(class_prototypes_text, dtype=torch.float32)  # C×T×E_text
        self.embed_dim, self.temperature_init = embed_dim, temperature_init
        super().__init__(spec, optim, device, root)

    def build_heads(self):
        text_dim = self.caption_embeddings.shape[1]
        return torch.nn.ModuleDict(
            {
                "image_proj": torch.nn.Linear(feature_dim(self.backbone), self.embed_dim),
                "text_proj": torch.nn.Linear(text_dim, self.embed_dim),
                "logit_scale": LogitScale(1.0 / self.temperature_init),
            }
        )

    def n_train(self):
        return len(self.x_train)

    def images(self, idx):
        return take(self.x_train, idx)

    def _embed_images(self, x):
        return F.normalize(self.heads["image_proj"](self.backbone(x)), dim=-1)

    def _embed_text(self, t):
        return F.normalize(self.heads["text_proj"](t), dim=-1)

    def step(self, xb, idx):
        ids = self.caption_ids[idx].to(self.device)
        img = self._embed_images(xb)
        txt = self._embed_text(self.caption_embeddings[ids.cpu()].to(self.device))
        scale = self.heads["logit_scale"]()
        logits = scale * img @ txt.T
        same = (ids[:, None] == ids[None, :]).float()
        targets = same / same.sum(1, keepdim=True)
        loss = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
        acc = (same[torch.arange(len(ids)), logits.argmax(1)] > 0).float().mean()
        return loss, {"train_loss": loss.detach(), "train_pair_acc": acc}

    def evaluate(self):
        with torch.no_grad():
            c, t, e = self.class_text.shape
            protos = self._embed_text(self.class_text.reshape(c * t, e).to(self.device)).reshape(c, t, -1).mean(1)
            protos = F.normalize(protos, dim=-1)
            logits = _eval_logits(lambda x: self._embed_images(x) @ protos.T, self.x_test, 512, self.device)
        return {"test_acc": float((logits.argmax(1) == self.y_test).float().mean())}


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
