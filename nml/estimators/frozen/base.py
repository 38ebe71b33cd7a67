"""The training loop shared by every feature tuner: a head h and a linear classifier g on h(f).

A tuner is a scikit-learn classifier over a frozen feature matrix X (N×D), on the package's
estimator base (:class:`~nml.estimators._base.NMLClassifier`). Subclasses declare their
hyper-parameters (``_parameter_constraints``, built from the constraint tables here, and
:meth:`FeatureTuner._hyper_params`), which head they train (:meth:`FeatureTuner._make_head`)
and which loss (:meth:`FeatureTuner._loss`); this module does input checks, seeding, batching,
optimisation and inference once for all of them.

Fits on cached features train through one engine, :func:`fit_many`: K tuners of one recipe (same
class and hyper-parameters but the seed) on K feature matrices of one shape are trained as one
model with stacked parameters (:class:`~nml.estimators.frozen.stacked.StackedHeads`), each head
keeping its own seed, initialisation, batch order, view draws, optimiser state and loss; a lone
``fit`` is the case K = 1. ``fit_encoder`` (the authors' loop, the encoder re-run on every batch)
keeps a plain module loop, the reference the stacked engine is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import (
    Interval,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from nml._infra.training import epoch_generator, shuffled_batches
from nml.estimators._base import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    RUN_CONSTRAINTS,
    NMLClassifier,
    NMLTransformerMixin,
)
from nml.estimators.frozen.heads import ACTIVATIONS, HEAD_KINDS, make_head
from nml.estimators.frozen.nmtune_losses import cross_entropy
from nml.estimators.frozen.stacked import StackedHeads

# (batch indices, generator) -> the batch's views of f (one or two (B, D) tensors): rows of a
# cached matrix, draws from a cached bank of augmented views, or encoder(augment(images[idx]))
BatchSource = Callable[[torch.Tensor, torch.Generator], list[torch.Tensor]]

_INFERENCE_CHUNK = 8192  # rows per forward pass in transform(); bounds memory on large X


# The hyper-parameters of a tuner as scikit-learn constraints, validated at fit. batch_size >= 2:
# BatchNorm and the batch covariance need two samples per batch (LinearProbe lowers it to 1).
OPTIMISATION_CONSTRAINTS: dict[str, list[Any]] = {
    "epochs": [POSITIVE_INT],
    "batch_size": [Interval(Integral, 2, None, closed="left")],
    "lr": [POSITIVE],
    "weight_decay": [NON_NEGATIVE],
    "standardize": ["boolean"],
    **RUN_CONSTRAINTS,
}
# the head h and the loop of the MLP and NMTune tuners
HEAD_CONSTRAINTS: dict[str, list[Any]] = {
    "head": [StrOptions(set(HEAD_KINDS))],
    "depth": [POSITIVE_INT],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "hidden_mult": [POSITIVE],
    "n_views": [Options(Integral, {1, 2})],
    "warmup_steps": [NON_NEGATIVE_INT],
}


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step learning rate: linear warm-up over ``warmup_steps``, then cosine to zero at
    ``total_steps`` (the authors' ``cosine_lr``; their published command lines use no warm-up)."""
    total = max(1, int(total_steps))
    warmup = int(warmup_steps)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def adamw(params: Any, hp: dict[str, Any], device: torch.device) -> torch.optim.AdamW:
    """AdamW with the tuner's lr and weight decay; the fused kernel where torch has one (CPU, CUDA):
    the same update, ~10x less time than the per-tensor loop on a head's parameters."""
    return torch.optim.AdamW(params, lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]),
                             fused=device.type in ("cpu", "cuda"))


def authors_classifier(n_features: int, n_classes: int) -> nn.Linear:
    """The linear classifier g as the authors build it: Kaiming-uniform weights, zero bias."""
    layer = nn.Linear(n_features, n_classes)
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight)
        layer.bias.zero_()
    return layer


def _view_draws(n_views_in_bank: int, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Which two different views of a V-view bank (V >= 2) each of ``batch`` samples reads."""
    v = n_views_in_bank
    first = torch.randint(v, (batch,), generator=gen)
    second = (first + torch.randint(1, v, (batch,), generator=gen)) % v
    return first, second


@dataclass
class _Prepared:
    """One checked fit: the tuner, its resolved hyper-parameters and its training tensors."""

    tuner: FeatureTuner
    hp: dict[str, Any]
    x: torch.Tensor                # (N, D), scaled
    bank: torch.Tensor | None      # (N, V, D), scaled, for two-view tuners
    y: torch.Tensor                # (N,) label indices
    device: torch.device


class FeatureTuner(NMLTransformerMixin, NMLClassifier):
    """Base class: train a head h and a linear classifier g on frozen features, g(h(f)).

    Training: ``torch.manual_seed(seed)``, build h then g (g as the authors build it: Kaiming-
    uniform weights, zero bias), AdamW with a per-step cosine schedule to zero (after
    ``warmup_steps`` of linear warm-up where the tuner has them), ``epochs`` passes over
    mini-batches of ``batch_size`` whose order comes from ``epoch_generator(seed, epoch)``.

    **Views.** With ``n_views == 1`` each step reads the batch's rows of X. With ``n_views == 2``
    (the authors' NMTune loop) each step reads two views of each sample — the authors re-run
    the encoder on two independently augmented copies of the batch — and the head and classifier
    see both (2B rows; cross-entropy on both, labels repeated). Views come from a bank of
    augmented features passed as ``fit(X, y, views=bank)`` (two different views of the bank per
    sample and step, drawn with the epoch's generator), or from an encoder re-run on every batch
    (:meth:`fit_encoder`). Without a bank both views are the row of X itself (e.g. text features,
    which have no augmentation).

    Subclasses with ``_skip_singleton_batches = True`` skip a trailing batch of one sample (it
    happens when ``N % batch_size == 1``): BatchNorm and the batch covariance are undefined on one
    sample. The skipped sample changes every epoch, and the cosine schedule counts only the steps
    taken.

    Hyper-parameters are checked against ``_parameter_constraints`` when a fit starts
    (scikit-learn's ``InvalidParameterError``, naming the parameter); ``transform`` returns the
    head's representation h(f), so a tuner is also a scikit-learn transformer.

    Fitted attributes
    -----------------
    classes_ : sorted unique labels; columns of ``predict_proba`` follow this order.
    n_features_in_ : D (and ``feature_names_in_`` when X had column names).
    mean_, scale_ : training mean and std + 1e-6 (float32) used when ``standardize``.
    head_ : the trained head on CPU in eval mode (``nn.Identity`` for the linear probe).
    coef_, intercept_ : weights (C, D) and bias (C,) of the classifier g.
    loss_curve_ : mean total training loss per epoch (per sample seen).
    """

    _skip_singleton_batches: bool = True

    # ---------------------------------------------------------------- subclass hooks
    def _hyper_params(self) -> dict[str, Any]:
        """The resolved hyper-parameters this tuner trains with (keys as in the constraint tables)."""
        raise NotImplementedError

    def _make_head(self, n_features: int, hp: dict[str, Any]) -> nn.Module:
        return make_head(n_features, kind=hp["head"], depth=hp["depth"], activation=hp["activation"],
                         hidden_mult=hp["hidden_mult"])

    #: names of the loss terms :meth:`_loss` reports (recorded per epoch in ``loss_parts_``)
    _loss_parts: tuple[str, ...] = ()

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, z: torch.Tensor, f: torch.Tensor,
              hp: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(per-head losses (K,), per-head unweighted terms named in ``_loss_parts``).

        Every argument is a stack over K heads: ``logits`` (K, M, C), ``y`` (K, M) and ``z``
        (K, M, D) hold every row of the step (M = 2B with two views: weak rows first); ``f`` is
        the (K, B, D) frozen feature of the first (weak) view. A term left out of the dict
        counts as 0.
        """
        return cross_entropy(logits, y), {}

    # ---------------------------------------------------------------- helpers
    def _resolved_hyper_params(self, **overrides: Any) -> dict[str, Any]:
        """:meth:`_hyper_params` with the non-None ``overrides`` (already validated) applied."""
        hp = {**self._hyper_params(), **{k: v for k, v in overrides.items() if v is not None}}
        hp.setdefault("n_views", 1)
        hp.setdefault("warmup_steps", 0)
        return hp

    def _device(self) -> torch.device:
        from nml.models.backbones import resolve_device

        return resolve_device(self.device)

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_ if self.standardize else X

    def _check_X(self, X: Any) -> np.ndarray:
        """X of a fitted tuner as a finite float32 matrix of ``n_features_in_`` columns."""
        check_is_fitted(self)
        return validate_data(self, X, dtype=np.float32, reset=False)

    # ---------------------------------------------------------------- training
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, views: Any = None) -> FeatureTuner:
        """Train on features X (N×D, finite) and labels y (N, any sortable values); returns self.

        ``views`` (optional): a bank of augmented features of the same samples, (N, V, D) with
        V >= 2, read only by tuners with ``n_views == 2``; X itself stays what ``transform``,
        ``predict`` and (with ``standardize``) the training statistics are about.

        The fit is :func:`fit_many` with one tuner.
        """
        _train_stacked([self._prepare(X, y, views)])
        return self

    def _prepare(self, X: Any, y: Any, views: Any) -> _Prepared:
        """Check one fit's inputs, set ``classes_``, ``n_features_in_``, ``mean_``, ``scale_``, and
        return its training tensors."""
        hp = self._resolved_hyper_params()
        X, y = validate_data(self, X, y, dtype=np.float32)
        bank = None
        if views is not None and hp["n_views"] == 2:
            bank = np.asarray(views, dtype=np.float32)
            if bank.ndim != 3 or bank.shape[0] != X.shape[0] or bank.shape[2] != X.shape[1] or bank.shape[1] < 2:
                raise ValueError(f"views must be a bank (N={X.shape[0]}, V>=2, D={X.shape[1]}) of augmented "
                                 f"features of X, got shape {bank.shape}")
            if not np.all(np.isfinite(bank)):
                raise ValueError("views contains NaN or inf")
        y_idx = self._encode_labels(y)
        self.mean_ = X.mean(0)
        self.scale_ = X.std(0) + 1e-6
        device = self._device()
        xt = torch.from_numpy(self._scale(X).astype(np.float32)).to(device)
        vt = None if bank is None else torch.from_numpy(self._scale(bank).astype(np.float32)).to(device)
        return _Prepared(self, hp, xt, vt, torch.from_numpy(y_idx).to(device), device)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_encoder(
        self,
        encoder: Callable[[torch.Tensor], torch.Tensor],
        images: torch.Tensor,
        y: Any,
        *,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        batch_size: int | None = None,
    ) -> FeatureTuner:
        """Train like :meth:`fit`, but encode every batch of every epoch instead of caching X.

        The NMTune authors' way of working (and what their runtime numbers measure): for each
        mini-batch of indices and each of the ``n_views`` views, ``f = encoder(augment(images[idx],
        generator))`` under ``torch.no_grad()``, then the same step as :meth:`fit`. Loss,
        optimiser, schedule, batch order and seeds are those of :meth:`fit`, so with one view, no
        augmentation and ``standardize=False`` the result equals ``fit(encoder(images), y)`` up to
        float rounding.

        Parameters
        ----------
        encoder : maps an image batch to (B, D) features; called once on ``images[:2]`` before
            training to learn D. Put a module in eval mode yourself.
        images : tensor N×C×H×W (any dtype the encoder/augment accept), indexed with a LongTensor.
        y : N labels.
        augment : optional ``augment(batch, generator)``; the generator is the epoch's
            ``epoch_generator(seed, epoch)`` after it drew the batch order.
        batch_size : overrides the tuner's batch size for this fit (None keeps it).

        Raises
        ------
        ValueError if ``standardize`` is True: the features change every epoch under
        augmentation, so "training mean and std" of them are undefined.
        """
        validate_parameter_constraints({"batch_size": [*self._parameter_constraints["batch_size"], None]},
                                       {"batch_size": batch_size}, caller_name=f"{type(self).__name__}.fit_encoder")
        with torch.enable_grad():
            hp = self._resolved_hyper_params(batch_size=batch_size)
            if self.standardize:
                raise ValueError(
                    "fit_encoder needs standardize=False: features are recomputed (and possibly "
                    "augmented) every epoch, so their training mean/std are undefined"
                )
            if not isinstance(images, torch.Tensor) or images.ndim < 2:
                raise ValueError(f"images must be a torch.Tensor N×C×H×W, got {type(images).__name__}")
            y_idx = self._encode_labels(self._validate_targets(y, len(images)))
            with torch.no_grad():
                n_features = int(encoder(images[:2]).shape[-1])
            device = self._device()

            def encode(idx: torch.Tensor, gen: torch.Generator) -> list[torch.Tensor]:
                out = []
                for _ in range(hp["n_views"]):
                    batch = images[idx.to(images.device)]
                    if augment is not None:
                        batch = augment(batch, gen)
                    with torch.no_grad():
                        f = encoder(batch)
                    if f.ndim != 2 or f.shape != (len(idx), n_features):
                        raise ValueError(f"encoder must return ({len(idx)}, {n_features}) features, got {tuple(f.shape)}")
                    out.append(f.to(device=device, dtype=torch.float32))
                return out

            self._set_input_width(n_features)
            # the features are used as they come; identity statistics keep _scale() a no-op
            self.mean_ = np.zeros(n_features, np.float32)
            self.scale_ = np.ones(n_features, np.float32)
            self._train(encode, y_idx, n_features, device, hp)
        return self

    def _train(self, source: BatchSource, y_idx: np.ndarray, n_features: int, device: torch.device,
               hp: dict[str, Any]) -> None:
        """The module loop behind :meth:`fit_encoder` (one head, any source of features per batch);
        sets head_, coef_, intercept_, curves. On cached features it trains what :func:`fit_many`
        trains, up to float rounding (tested)."""
        n = len(y_idx)
        yt = torch.from_numpy(y_idx.astype(np.int64)).to(device)
        torch.manual_seed(self.seed)
        head = self._make_head(n_features, hp).to(device)
        classifier = authors_classifier(n_features, len(self.classes_)).to(device)
        epochs, batch_size = int(hp["epochs"]), int(hp["batch_size"])
        opt = adamw([*head.parameters(), *classifier.parameters()], hp, device)
        skip_last = self._skip_singleton_batches and n > batch_size and n % batch_size == 1
        steps_per_epoch = -(-n // batch_size) - int(skip_last)
        sched = cosine_schedule(opt, epochs * steps_per_epoch, int(hp["warmup_steps"]))
        n_seen = n - int(skip_last)
        head.train()
        self.loss_curve_: list[float] = []
        parts_curve: list[dict[str, float]] = []
        for epoch in range(epochs):
            gen = epoch_generator(self.seed, epoch)
            total = 0.0
            part_sums: dict[str, float] = {}
            for idx in shuffled_batches(n, batch_size, gen):
                if skip_last and len(idx) == 1:
                    continue
                views = source(idx, gen)
                f = views[0]
                z = head(torch.cat(views) if len(views) > 1 else f)
                y_batch = yt[idx.to(device)]
                # the loss hook works on stacks of heads: this loop is a stack of one
                loss, terms = self._loss(classifier(z)[None], y_batch.repeat(len(views))[None], z[None], f[None], hp)
                loss = loss[0]
                parts = {name: float(terms[name][0].detach()) if name in terms else 0.0 for name in self._loss_parts}
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
                for key, value in (parts or {}).items():
                    part_sums[key] = part_sums.get(key, 0.0) + value * len(idx)
            self.loss_curve_.append(total / n_seen)
            parts_curve.append({key: value / n_seen for key, value in part_sums.items()})
        if self._loss_parts:
            self.loss_parts_ = parts_curve
        else:
            self.__dict__.pop("loss_parts_", None)
        # CPU state so the fitted estimator pickles and predicts without a GPU
        self.head_ = head.eval().cpu()
        self.coef_ = classifier.weight.detach().cpu().numpy()
        self.intercept_ = classifier.bias.detach().cpu().numpy()

    # ---------------------------------------------------------------- inference
    def transform(self, X: Any) -> np.ndarray:
        """The features the classifier reads: ``head_(standardised X)`` in eval mode, float32 N×D."""
        Xs = self._scale(self._check_X(X)).astype(np.float32)
        if isinstance(self.head_, nn.Identity):
            return Xs
        with torch.no_grad():
            chunks = [self.head_(torch.from_numpy(Xs[i : i + _INFERENCE_CHUNK])).numpy()
                      for i in range(0, len(Xs), _INFERENCE_CHUNK)]
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def _logits(self, X: Any) -> np.ndarray:
        """g(h(f)): the classifier on :meth:`transform`'s representation, (N, n_classes)."""
        return self.transform(X) @ self.coef_.T + self.intercept_


# ------------------------------------------------------------------------ many fits as one
def stack_signature(tuner: FeatureTuner) -> Hashable:
    """What fits must share to be trained as one: the tuner's class and every resolved
    hyper-parameter but the seed (the data must also share N, D, the classes and the bank shape)."""
    hp = tuner._resolved_hyper_params()
    return (type(tuner).__module__, type(tuner).__qualname__,
            tuple(sorted((k, repr(v)) for k, v in hp.items() if k != "seed")))


def fit_many(tuners: Sequence[FeatureTuner], Xs: Sequence[Any], ys: Sequence[Any],
             views: Sequence[Any] | None = None) -> list[FeatureTuner]:
    """Fit K tuners of one recipe on K data sets of one shape as one batched model; returns them.

    ``tuners[k].fit(Xs[k], ys[k], views=views[k])`` for every k, computed together: the K heads'
    parameters are stacked and every step is one batched forward and backward pass
    (:class:`~nml.estimators.frozen.stacked.StackedHeads`). Each head keeps its own recipe: it is
    initialised from its own seed (``torch.manual_seed(seed)`` then head, then classifier, as a
    lone fit), shuffles with its own ``epoch_generator(seed, epoch)``, draws its own views, has its
    own AdamW state and its own loss. Heads trained together differ from lone fits by float
    rounding only (the fused AdamW kernel's rounding depends on the stacked tensor's size), so
    callers that cache results train a fixed set of fits together (:mod:`nml.chapters.fit_jobs`).

    Parameters
    ----------
    tuners : K unfitted or fitted tuners with the same :func:`stack_signature` (class and
        hyper-parameters but the seed); they are fitted in place.
    Xs, ys : K feature matrices (N, D) of one shape and their labels; every y must hold the same
        number of classes.
    views : None, or K view banks (N, V, D) of one shape (or None each) for two-view tuners.

    Raises
    ------
    ValueError naming the first tuner (by position) whose recipe or data shape differs from the
    first one's, or whose inputs are invalid (as ``fit`` would raise).
    """
    tuners = list(tuners)
    if not tuners:
        return []
    views = [None] * len(tuners) if views is None else list(views)
    if not len(Xs) == len(ys) == len(views) == len(tuners):
        raise ValueError(f"need one X, y and views per tuner: got {len(tuners)} tuners, {len(Xs)} X, {len(ys)} y, "
                         f"{len(views)} views")
    for tuner in tuners:
        if not isinstance(tuner, FeatureTuner):
            raise TypeError(f"fit_many trains FeatureTuners, got {type(tuner).__name__}")
        tuner._validate_params()
    first = stack_signature(tuners[0])
    for k, tuner in enumerate(tuners[1:], 1):
        if stack_signature(tuner) != first:
            raise ValueError(f"tuner {k} ({tuner!r}) does not share tuner 0's recipe ({tuners[0]!r}); "
                             "only the seed may differ")
    _train_stacked([t._prepare(X, y, v) for t, X, y, v in zip(tuners, Xs, ys, views, strict=True)])
    return tuners


def _train_stacked(fits: list[_Prepared]) -> None:
    """The training loop of every fit on cached features: K heads as one (K = 1 for ``fit``)."""
    ref = fits[0]
    hp, device = ref.hp, ref.device
    n, d = ref.x.shape
    n_classes = len(ref.tuner.classes_)
    def shape(fit: _Prepared) -> tuple:
        return tuple(fit.x.shape), len(fit.tuner.classes_), None if fit.bank is None else tuple(fit.bank.shape)

    shape_0 = shape(ref)
    for k, fit in enumerate(fits[1:], 1):
        shape_k = shape(fit)
        if shape_k != shape_0 or fit.device != device:
            raise ValueError(f"fit {k} has (X shape, classes, bank shape) {shape_k} on {fit.device}, "
                             f"fit 0 has {shape_0} on {device}: they cannot be trained as one")
    with torch.enable_grad():
        heads, classifiers = [], []
        for fit in fits:
            torch.manual_seed(fit.tuner.seed)
            heads.append(fit.tuner._make_head(d, hp).to(device))
            classifiers.append(authors_classifier(d, n_classes).to(device))
        model = StackedHeads(heads, classifiers)
        x = torch.stack([fit.x for fit in fits])                      # (K, N, D)
        y = torch.stack([fit.y for fit in fits])                      # (K, N)
        bank = None if ref.bank is None else torch.stack([fit.bank for fit in fits])  # (K, N, V, D)
        k_rows = torch.arange(len(fits), device=device)[:, None]      # gathers row k of head k
        epochs, batch_size, n_views = int(hp["epochs"]), int(hp["batch_size"]), int(hp["n_views"])
        opt = adamw(model.parameters(), hp, device)
        skip_last = ref.tuner._skip_singleton_batches and n > batch_size and n % batch_size == 1
        steps_per_epoch = -(-n // batch_size) - int(skip_last)
        sched = cosine_schedule(opt, epochs * steps_per_epoch, int(hp["warmup_steps"]))
        n_seen = n - int(skip_last)
        names = ref.tuner._loss_parts
        loss_curve = torch.zeros(epochs, len(fits), dtype=torch.float64)
        parts_curve = torch.zeros(epochs, len(names), len(fits), dtype=torch.float64)
        for epoch in range(epochs):
            gens = [epoch_generator(fit.tuner.seed, epoch) for fit in fits]
            # each head's batch order: a permutation drawn once per epoch, read in slices
            order = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
            total = torch.zeros(len(fits), dtype=torch.float64, device=device)
            part_sums = torch.zeros(len(names), len(fits), dtype=torch.float64, device=device)
            for start in range(0, n, batch_size):
                idx = order[:, start:start + batch_size]              # (K, B)
                b = idx.shape[1]
                if skip_last and b == 1:
                    continue
                f = x[k_rows, idx]                                     # (K, B, D)
                if n_views == 1:
                    inputs = f
                elif bank is None:
                    inputs = torch.cat([f, f], 1)
                else:
                    draws = [_view_draws(bank.shape[2], b, g) for g in gens]
                    first = torch.stack([dr[0] for dr in draws]).to(device)
                    second = torch.stack([dr[1] for dr in draws]).to(device)
                    f = bank[k_rows, idx, first]
                    inputs = torch.cat([f, bank[k_rows, idx, second]], 1)
                z, logits = model.forward(inputs)
                y_batch = y[k_rows, idx].repeat(1, n_views)
                loss, terms = ref.tuner._loss(logits, y_batch, z, f, hp)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()  # disjoint parameters: each head gets the gradient of its own loss
                opt.step()
                sched.step()
                total += loss.detach().double() * b
                for i, name in enumerate(names):
                    if name in terms:
                        part_sums[i] += terms[name].detach().double() * b
            loss_curve[epoch] = total.cpu() / n_seen
            parts_curve[epoch] = part_sums.cpu() / n_seen
    for k, fit in enumerate(fits):
        head, classifier = model.unstack(k)
        tuner = fit.tuner
        tuner.loss_curve_ = loss_curve[:, k].tolist()
        if names:
            tuner.loss_parts_ = [dict(zip(names, parts_curve[e, :, k].tolist(), strict=True)) for e in range(epochs)]
        else:
            tuner.__dict__.pop("loss_parts_", None)
        # CPU state so the fitted estimator pickles and predicts without a GPU
        tuner.head_ = head.eval().cpu()
        tuner.coef_ = classifier.weight.detach().cpu().numpy()
        tuner.intercept_ = classifier.bias.detach().cpu().numpy()
